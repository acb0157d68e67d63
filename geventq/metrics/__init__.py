"""Prometheus metrics of a deployment, kept in Redis (API section 10).

- :mod:`geventq.metrics.counting`: what workers add to Redis when jobs end (in
  the endings' own pipeline), imported by the worker's hot path: stdlib only.
- :mod:`geventq.metrics.exposition`: the metric families, read from Redis only
  (``prometheus-client``, the ``geventq[metrics]`` extra).
- :mod:`geventq.metrics.server`: the ``/metrics`` HTTP endpoint.
"""
