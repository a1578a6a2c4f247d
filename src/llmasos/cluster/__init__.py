"""The compute pool: engine replicas as Ray actors behind one HTTP front, cache-aware routing and
an autoscaler. This package's top level imports no Ray: `desired_replicas`, the autoscaler's
formula, is pure arithmetic (llmasos.cluster.scaler); the Ray parts load only when a pool
starts."""

from llmasos.cluster.scaler import desired_replicas

__all__ = ["desired_replicas"]
