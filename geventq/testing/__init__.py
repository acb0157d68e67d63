"""Private Redis for tests, demos and benchmarks: one server (:mod:`.server`) or a local
cluster (:mod:`.cluster`). Neither ever touches a server it did not start."""

from .cluster import (
    REDIS_CLI_ENV,
    ClusterUnavailable,
    LocalRedisCluster,
    find_redis_cli,
    free_cluster_port,
)
from .server import REDIS_SERVER_ENV, RedisServer, find_redis_server, free_port

__all__ = ["REDIS_CLI_ENV", "REDIS_SERVER_ENV", "ClusterUnavailable", "LocalRedisCluster",
           "RedisServer", "find_redis_cli", "find_redis_server", "free_cluster_port", "free_port"]
