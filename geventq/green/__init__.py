"""Everything that needs gevent lives here, and only here.

``geventq worker`` calls :func:`geventq.green.patch.patch` first thing,
before any user module is imported; the library itself never patches.
"""
