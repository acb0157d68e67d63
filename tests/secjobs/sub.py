"""A module below the allowed package: ``tests.secjobs`` allows it too."""

from tests.secjobs import record


def deep(x):
    record("deep")
    return x + 1
