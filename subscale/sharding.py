"""Data parallelism: one `data` mesh axis over all devices.

Parameters are replicated on every device and batches are split along their
first axis, in training and in batched generation alike. The same mesh spans
every host after `jax.distributed.initialize()`.
"""

import jax
import numpy as np


def data_mesh():
    """The mesh over all devices and its two shardings.

    Returns:
      (mesh, replicated, sharded): a `jax.sharding.Mesh` with the one axis
      "data", the sharding that puts a whole array on every device, and the
      one that splits an array's first axis over the devices.
    """
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("data",))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    return mesh, replicated, sharded
