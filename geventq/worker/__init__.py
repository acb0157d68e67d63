"""Workers: the one loop (``loop``), its executors (``executors``, ``simple``,
``forkexecutor``), the shared base (``base``), liveness (``heartbeat``, ``recovery``),
fork children (``forkpool``, ``childproc``, ``forkchild``), the hub-free ``ForkWorker``
(``forkworker``) and the process bootstrap (``bootstrap``, ``modes``). The gevent
executors and ``GeventWorker`` live in ``geventq.green``."""
