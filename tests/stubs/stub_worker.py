"""A stand-in worker that follows the launcher contract, for supervisor tests.

It never imports geventq, gevent or redis, so it starts in ~20 ms. It touches
``$GEVENTQ_HEARTBEAT_FILE`` every ``$STUB_BEAT`` seconds, treats the first
SIGTERM as warm (finish the "job", exit 0) and a second as cold, and appends
one JSON line per event to ``$STUB_EVENTS`` so tests can replay what happened.

``$STUB_MODE`` picks a misbehaviour, for every worker or only those whose name
ends with ``$STUB_TARGET``:
  boot_error  print a reason to stderr, exit 3
  crash       exit 1 after $STUB_AFTER seconds
  exit_ok     exit 0 after $STUB_AFTER seconds (like --max-jobs)
  block       stop beating after $STUB_AFTER seconds and ignore SIGTERM (a blocked hub)
  grow        allocate $STUB_GROW_MB megabytes after $STUB_AFTER seconds
"""

import json
import os
import signal
import sys
import time

NAME = sys.argv[sys.argv.index("--name") + 1] if "--name" in sys.argv else "?"
EVENTS = os.environ.get("STUB_EVENTS")
BEAT = float(os.environ.get("STUB_BEAT", "0.1"))
JOB = float(os.environ.get("STUB_JOB_SECONDS", "0"))
AFTER = float(os.environ.get("STUB_AFTER", "0"))
TARGET = os.environ.get("STUB_TARGET", "")
MODE = os.environ.get("STUB_MODE", "") if NAME.endswith(TARGET) else ""
HEARTBEAT = os.environ.get("GEVENTQ_HEARTBEAT_FILE")

terms = 0
stop_at = None


def event(kind, **extra):
    if EVENTS:
        line = json.dumps({"t": time.time(), "ev": kind, "name": NAME, "pid": os.getpid(), **extra})
        fd = os.open(EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, (line + "\n").encode())  # one write with O_APPEND: lines never mix
        os.close(fd)


def on_term(signum, frame):
    global terms, stop_at
    terms += 1
    event("term", n=terms)
    if terms >= 2:
        event("exit", code=0, cold=True)
        sys.exit(0)
    stop_at = time.monotonic() + JOB  # warm: let the running "job" finish


def beat():
    if HEARTBEAT:
        if not os.path.getsize(HEARTBEAT):
            with open(HEARTBEAT, "w") as fh:  # ready, as a registered worker says
                fh.write("ready\n")
        os.utime(HEARTBEAT)


def main():
    event("start", argv=sys.argv[1:], pool=os.environ.get("GEVENTQ_POOL"),
          heartbeat=HEARTBEAT, notify=os.environ.get("NOTIFY_SOCKET"))
    signal.signal(signal.SIGTERM, on_term)
    if MODE == "boot_error":
        print("Traceback (most recent call last):", file=sys.stderr)
        print("geventq.exceptions.ConfigError: cannot import tests.nope for "
              "redis://alice:s3cret@localhost:1/0", file=sys.stderr)
        sys.exit(3)
    started = time.monotonic()
    beat()
    event("beat")
    ballast = None
    while True:
        now = time.monotonic()
        if stop_at is not None and now >= stop_at:
            event("exit", code=0)
            sys.exit(0)
        if MODE and now - started >= AFTER:
            if MODE == "crash":
                print(f"worker {NAME} crashed on purpose", file=sys.stderr)
                sys.exit(1)
            if MODE == "exit_ok":
                event("exit", code=0)
                sys.exit(0)
            if MODE == "block":
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                event("blocked")
                time.sleep(3600)
            if MODE == "grow" and ballast is None:
                ballast = bytearray(int(os.environ.get("STUB_GROW_MB", "64")) * 1024 * 1024)
                ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page: real RSS
                event("grew")
        beat()
        time.sleep(BEAT)  # the stub's heartbeat period (it stands in for a worker loop)


if __name__ == "__main__":
    main()
