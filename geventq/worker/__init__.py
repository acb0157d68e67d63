"""Workers: the one loop (``loop``), its executors (``executors``, ``simple``), the shared
base (``base``), liveness (``heartbeat``, ``recovery``) and the process bootstrap
(``bootstrap``). The gevent executors and ``GeventWorker`` live in ``geventq.green``."""
