"""Second-order optimisation pieces on flat vectors: Hessian-vector products, conjugate
gradient, and the trust-region step (conjugate gradient plus a backtracking line search)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from metarl.policies.params import unflat


def hessian_vector_product(
    gradient: Sequence[Tensor], leaves: Sequence[Tensor], directions: Sequence[Tensor]
) -> list[Tensor]:
    """``H d`` for the Hessian whose gradient ``gradient`` (built with ``create_graph``) was
    taken with respect to ``leaves``; ``directions`` are shaped like ``leaves``. The graph is
    kept for further products."""
    inner = torch.stack([(g * d).sum() for g, d in zip(gradient, directions, strict=True)]).sum()
    return list(torch.autograd.grad(inner, list(leaves), retain_graph=True))


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, iterations: int, tolerance: float = 1e-10
) -> tuple[Tensor, Tensor]:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given ``A @ v``.

    Returns ``x`` and the residual ``b - A x`` (kept by the iteration, so ``A x`` costs no
    further product). Stops early, keeping the iterate so far, where ``A`` shows non-positive
    curvature along a search direction (an estimated matrix that is not positive definite)."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    r_dot = r @ r
    for _ in range(iterations):
        ap = matvec(p)
        curvature = p @ ap
        if curvature <= 0:
            break
        alpha = r_dot / curvature
        x += alpha * p
        r -= alpha * ap
        new_r_dot = r @ r
        if new_r_dot < tolerance:
            break
        p = r + (new_r_dot / r_dot) * p
        r_dot = new_r_dot
    return x, r


@dataclass
class TrustRegionResult:
    accepted: bool
    step_fraction: float
    surrogate_gain: float
    kl: float
    line_search_steps: int


def trust_region_step(
    params: Sequence[Tensor],
    gradient: Tensor,
    fisher_vector_product: Callable[[Tensor], Tensor],
    evaluate: Callable[[], tuple[float, float]],
    base_surrogate: float,
    max_kl: float,
    cg_iterations: int,
    damping: float,
    line_search_steps: int,
    backtrack_ratio: float,
) -> TrustRegionResult:
    """One TRPO update of ``params`` in place, maximising a surrogate under a KL bound.

    Backtracking shrinks the step by ``backtrack_ratio``, or more when the trial's KL says the
    boundary is further in (KL is locally quadratic in the step length).

    ``gradient`` is the surrogate's gradient (flat) at the current ``params``, where the
    surrogate is ``base_surrogate``; ``evaluate()`` returns (surrogate, KL) at the current values
    of ``params`` and is called after each trial step.
    """
    def damped(v: Tensor) -> Tensor:
        return fisher_vector_product(v) + damping * v

    direction, residual = conjugate_gradient(damped, gradient, cg_iterations)
    shs = 0.5 * direction @ (gradient - residual)
    step = direction * torch.sqrt(max_kl / shs.clamp(min=1e-12))
    start = [p.detach().clone() for p in params]
    fraction = 1.0
    for i in range(line_search_steps):
        with torch.no_grad():
            for p, p0, s in zip(params, start, unflat(step, params)):
                p.copy_(p0 + fraction * s)
        surrogate, kl = evaluate()
        gain = surrogate - base_surrogate
        if gain > 0 and kl <= max_kl and math.isfinite(surrogate):
            return TrustRegionResult(True, fraction, gain, kl, i + 1)
        # KL grows about quadratically with the step: jump close to the boundary at once.
        shrink = 0.95 * math.sqrt(max_kl / kl) if math.isfinite(kl) and kl > max_kl else 1.0
        fraction *= min(backtrack_ratio, shrink)
    with torch.no_grad():
        for p, p0 in zip(params, start):
            p.copy_(p0)
    return TrustRegionResult(False, 0.0, 0.0, 0.0, line_search_steps)
