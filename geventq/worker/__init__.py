"""Workers: the shared base, SimpleWorker, and how the CLI builds one."""
