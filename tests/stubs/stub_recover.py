"""A stand-in for ``geventq recover --worker NAME``: records that it was called."""

import json
import os
import sys
import time

name = sys.argv[sys.argv.index("--worker") + 1]
events = os.environ.get("STUB_EVENTS")
if events:
    line = json.dumps({"t": time.time(), "ev": "recover", "name": name, "argv": sys.argv[1:]})
    fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, (line + "\n").encode())
    os.close(fd)
