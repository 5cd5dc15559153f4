"""Rollouts: episode batches as plain tensors, the batched sampler and its Ray backend."""
