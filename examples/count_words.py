"""The job of the README demo (python-rq's classic example)."""

import requests


def count_words_at_url(url):
    resp = requests.get(url, timeout=10)
    return len(resp.text.split())
