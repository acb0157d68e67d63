"""Helpers for the supervisor tests: a stub worker, a stub recover, job functions."""
