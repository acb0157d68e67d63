"""A long job that reports its progress (the Flask example's live progress bar)."""

import time

from geventq import get_current_job


def build_report(parts, seconds_per_part=0.5):
    """Build a report in ``parts`` steps, reporting progress after each."""
    job = get_current_job()
    for i in range(parts):
        time.sleep(seconds_per_part)  # the real work would be here
        job.set_progress(100 * (i + 1) / parts, f"part {i + 1} of {parts}")
    return f"report of {parts} parts"
