"""Parameter sets: a policy's parameters as a ``dict[str, Tensor]``, shared or per task.

A set is *shared* (the module's own shapes) or *per task* (a leading ``n_tasks`` dimension on
every tensor). Flat vectors (:func:`flat`, :func:`unflat`) are what conjugate-gradient solvers
and trust regions work on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

Params = dict[str, Tensor]


def per_task(params: Params, n_tasks: int) -> Params:
    """Expand shared parameters to per-task copies (differentiable, no memory copy)."""
    return {key: value.expand(n_tasks, *value.shape) for key, value in params.items()}


def is_per_task(params: Params) -> bool:
    """Whether a policy's ``params`` carry a leading task dimension."""
    return params["layers.0.weight"].dim() == 3


def detach_params(params: Params) -> Params:
    """The same values without gradient history."""
    return {key: value.detach() for key, value in params.items()}


def flat(tensors: Sequence[Tensor]) -> Tensor:
    """The tensors concatenated into one vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflat(vector: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Views of ``vector`` shaped like ``like`` (the inverse of :func:`flat`)."""
    out, start = [], 0
    for t in like:
        out.append(vector[start : start + t.numel()].view_as(t))
        start += t.numel()
    return out
