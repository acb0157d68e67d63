"""Run the real Arbiter with the stub worker, for the real-process tests.

Usage: run_pool.py SETTINGS.json. The JSON holds PoolSettings fields plus an
optional "policy" (RestartPolicy fields); it is read again on SIGHUP.
"""

import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from geventq.supervisor import Arbiter, Notifier, PoolSettings, RestartPolicy  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def load(path):
    with open(path) as f:
        data = json.load(f)
    return data, PoolSettings(**{k: v for k, v in data.items()
                                 if k in PoolSettings.__dataclass_fields__})


def main():
    path = sys.argv[1]
    data, settings = load(path)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s pool %(levelname)s %(message)s")
    arbiter = Arbiter(
        settings,
        lambda name: [sys.executable, os.path.join(HERE, "stub_worker.py"), "worker",
                      *data.get("forward", []), "--name", name, *data.get("queues", [])],
        recover_argv=lambda name: [sys.executable, os.path.join(HERE, "stub_recover.py"),
                                   "--worker", name],
        reload_settings=lambda: load(path)[1],
        policy=RestartPolicy(**data.get("policy", {})),
        notifier=Notifier(),
        pool_name=data.get("pool_name"),
    )
    sys.exit(arbiter.run())


if __name__ == "__main__":
    main()
