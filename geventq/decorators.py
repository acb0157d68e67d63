"""``@job(...)``: give a function a ``.delay()`` that enqueues it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import redis

from .job_options import JOB_OPTIONS
from .queue import Queue


class job:  # noqa: N801  (lower case, as in python-rq)
    """Decorator: ``@job('low', connection=r, timeout=5)``.

    ``f.delay(*args, **kwargs)`` enqueues ``f`` and returns the Job; calling
    ``f(...)`` still runs it right here. The first argument is a queue name
    or a Queue instance; the other keywords are job options.
    """

    def __init__(self, queue: str | Queue, connection: redis.Redis | None = None,
                 is_async: bool = True, serializer: Any = None, **options: Any):
        unknown = set(options) - JOB_OPTIONS
        if unknown:
            raise TypeError(f"unknown job option(s) for @job: {', '.join(sorted(unknown))}")
        self.queue = queue
        self.connection = connection
        self.is_async = is_async
        self.serializer = serializer
        self.options = options

    def _queue(self) -> Queue:
        if isinstance(self.queue, Queue):
            return self.queue
        return Queue(self.queue, connection=self.connection, is_async=self.is_async,
                     serializer=self.serializer)

    def __call__(self, f: Callable) -> Callable:
        @functools.wraps(f)
        def delay(*args: Any, **kwargs: Any):
            queue = self._queue()
            options = dict(self.options)
            for name in JOB_OPTIONS & kwargs.keys():
                options[name] = kwargs.pop(name)
            return queue.enqueue_call(f, args=args, kwargs=kwargs, **options)

        # a function takes new attributes; mypy's Callable does not say so
        f.delay = delay  # type: ignore[attr-defined]
        return f
