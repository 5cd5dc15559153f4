"""The task-family contract: the protocol, array families, batched envs, their random numbers,
the checker and drawing helpers. Everything else in metarl builds on this layer."""
