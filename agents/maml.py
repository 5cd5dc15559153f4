"""MAML for reinforcement learning (Finn et al. 2017) with a trust-region or clipped outer step.

Inner loop, per task t: ``theta_t = theta_0 + alpha * grad J_t(theta_0)`` from episodes sampled
with ``theta_0`` (LVC surrogate, see :func:`metarl.learn.surrogates.inner_surrogate`). Outer loop:
``theta_0 <- argmax E_t[J_t(theta_t)]`` on fresh episodes sampled with ``theta_t``, through the
inner step (second order unless ``--first-order``), with TRPO (default) or a PPO-clipped
surrogate and Adam (ProMP-style).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution

from metarl.config import option
from metarl.learn.learner import Episodes, MetaLearner, Rollouts, Timer
from metarl.learn.optim import hessian_vector_product, trust_region_step
from metarl.learn.surrogates import (
    clipped_surrogate,
    distributions,
    identity_jacobian_fisher,
    inner_gradient,
    kl_hessian_product,
    log_probs_under,
    mean_kl,
    policy_gradient_step,
)
from metarl.policies.params import Params, detach_params, flat, per_task, unflat
from metarl.registry import register_learner


@dataclass(frozen=True)
class MAMLOptions:
    outer: str = option("trpo", "outer optimiser: trpo, or ppo (clipped surrogate + Adam)",
                        choices=("trpo", "ppo"))
    first_order: bool = option(False, "drop the second-order terms of the meta-gradient")
    max_kl: float = option(0.01, "TRPO trust region: max mean KL", above=0.0)
    cg_iters: int = option(10, "TRPO conjugate-gradient iterations", min=1)
    cg_damping: float = option(1e-5, "TRPO conjugate-gradient damping", min=0.0)
    ls_max_steps: int = option(15, "TRPO line-search steps", min=1)
    ls_backtrack_ratio: float = option(0.8, "TRPO line-search shrink factor", above=0.0, max=1.0)
    fvp: str = option(
        "exact",
        "TRPO metric: 'exact' differentiates the KL twice through the inner step; 'identity' "
        "uses the adapted policies' Fisher, taking the inner step's Jacobian as I",
        choices=("exact", "identity"),
    )
    fvp_subsample: float = option(
        0.2, "fraction of each task's episodes used for the TRPO metric's products",
        above=0.0, max=1.0,
    )
    outer_lr: float = option(1e-3, "ppo outer optimiser: Adam step size", above=0.0)
    ppo_epochs: int = option(5, "ppo outer optimiser: gradient steps per meta-iteration", min=1)
    ppo_clip: float = option(0.2, "ppo outer optimiser: ratio clip", above=0.0)


@dataclass
class OuterData:
    """What the outer step needs: the rollouts, and the adapted policies on the episodes
    sampled after adaptation."""

    rollouts: Rollouts
    adapted: Params
    """The adapted parameters, detached."""
    old_log_probs: Tensor
    old_distribution: Distribution
    """The adapted policies on the outer episodes (grouped), without gradient."""
    live_distribution: Distribution
    """The same policies with the graph of the inner steps back to theta_0, for the outer
    step (which so need not redo the inner steps)."""

    @property
    def inner(self) -> list[Episodes]:
        return self.rollouts.inner

    @property
    def outer(self) -> Episodes:
        return self.rollouts.after


@register_learner("maml")
class MAML(MetaLearner):
    Options = MAMLOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.optimizer = (
            torch.optim.Adam(self.policy.parameters(), lr=self.options.outer_lr)
            if self.options.outer == "ppo" else None
        )

    @property
    def second_order(self) -> bool:
        return not self.options.first_order

    def outer_data(self, rollouts: Rollouts) -> OuterData:
        """The adapted policies on the post-adaptation episodes, old (fixed) and live."""
        adapted = detach_params(rollouts.adapted)
        outer = rollouts.after.batch
        with torch.no_grad():
            old = distributions(self.policy, adapted, outer)
        return OuterData(
            rollouts=rollouts,
            adapted=adapted,
            old_log_probs=log_probs_under(old, outer),
            old_distribution=old,
            live_distribution=distributions(self.policy, rollouts.adapted, outer),
        )

    def adapted_params(self, inner: list[Episodes], create_graph: bool) -> Params:
        """theta_t as a function of the live theta_0, replaying the inner steps on fixed data."""
        params = self.policy.parameters_dict()
        for episodes in inner:
            params = policy_gradient_step(
                self.policy, params, episodes.batch, episodes.advantages, self.config.inner_lr,
                create_graph,
            )
        return params

    def outer_surrogate(
        self, data: OuterData, dist: Distribution, clip: float | None = None
    ) -> Tensor:
        """The outer objective under the adapted policies ``dist`` (grouped, per task)."""
        outer = data.outer
        return clipped_surrogate(
            log_probs_under(dist, outer.batch), data.old_log_probs, outer.advantages,
            outer.batch, clip,
        ).mean()

    # --- the meta-update ------------------------------------------------------------------------
    def outer_update(self, rollouts: Rollouts, timer: Timer) -> dict[str, float]:
        data = self.outer_data(rollouts)
        return self.trpo_update(data) if self.options.outer == "trpo" else self.ppo_update(data)

    def trpo_update(self, data: OuterData) -> dict[str, float]:
        options = self.options
        theta = list(self.policy.parameters())
        surrogate = self.outer_surrogate(data, data.live_distribution)
        gradient = flat(torch.autograd.grad(surrogate, theta))
        exact = options.fvp == "exact" and not options.first_order
        fvp = self.exact_fvp(data, theta) if exact else self.identity_fvp(data)
        result = trust_region_step(
            theta, gradient, fvp, lambda: self.evaluate_outer(data), float(surrogate.detach()),
            options.max_kl, options.cg_iters, options.cg_damping, options.ls_max_steps,
            options.ls_backtrack_ratio,
        )
        return {
            "kl": result.kl,
            "surrogate_gain": result.surrogate_gain,
            "line_search_steps": result.line_search_steps,
            "step_accepted": float(result.accepted),
        }

    def evaluate_outer(self, data: OuterData) -> tuple[float, float]:
        """(surrogate, mean KL) at the current theta_0, without building a graph to keep."""
        trial = detach_params(self.adapted_params(data.inner, create_graph=False))
        with torch.no_grad():
            dist = distributions(self.policy, trial, data.outer.batch)
            kl = mean_kl(data.old_distribution, dist, data.outer.batch)
            return float(self.outer_surrogate(data, dist)), float(kl)

    def exact_fvp(self, data: OuterData, theta: list[Tensor]) -> Callable[[Tensor], Tensor]:
        """Hessian of the mean KL with respect to theta_0, through the inner steps.

        At the current theta_0 that Hessian is ``mean_t J_t^T F_t J_t``: ``F_t`` the Fisher of
        task t's adapted policy, ``J_t`` the inner steps' Jacobian, a product of
        ``I + lr H`` (``H`` the inner objective's Hessian). A product with it chains
        Hessian-vector products of the inner objective around one Fisher product, each batched
        over tasks, on ``fvp_subsample`` of the inner and outer episodes.
        """
        fraction, generator = self.options.fvp_subsample, self.sampler.generator
        lr = self.config.inner_lr
        steps = []  # per inner step: its per-task leaves and the inner gradients there
        params = per_task(self.meta_params(), data.outer.batch.n_tasks)
        for episodes in (episodes.subsample(fraction, generator) for episodes in data.inner):
            leaves = [value.detach().clone().requires_grad_() for value in params.values()]
            grads = inner_gradient(
                self.policy, dict(zip(params, leaves)), episodes.batch, episodes.advantages, True
            )
            steps.append((leaves, grads))
            params = {key: (leaf + lr * grad).detach()
                      for key, leaf, grad in zip(params, leaves, grads)}
        fisher = kl_hessian_product(
            self.policy, data.outer.subsample(fraction, generator).batch, params
        )

        def jacobian_product(vectors: list[Tensor], order: Sequence[Any]) -> list[Tensor]:
            for leaves, grads in order:
                hessian = hessian_vector_product(grads, leaves, vectors)
                vectors = [v + lr * h for v, h in zip(vectors, hessian)]
            return vectors

        def product(v: Tensor) -> Tensor:
            directions = [d.expand_as(leaf) for d, leaf in zip(unflat(v, theta), steps[0][0])]
            forward = jacobian_product(directions, steps)
            return flat([w.sum(dim=0) for w in jacobian_product(fisher(forward), steps[::-1])])

        return product

    def identity_fvp(self, data: OuterData) -> Callable[[Tensor], Tensor]:
        """Mean over tasks of each adapted policy's Fisher (inner Jacobian taken as I)."""
        outer = data.outer.subsample(self.options.fvp_subsample, self.sampler.generator).batch
        return identity_jacobian_fisher(self.policy, outer, data.adapted)

    def ppo_update(self, data: OuterData) -> dict[str, float]:
        assert self.optimizer is not None
        for epoch in range(self.options.ppo_epochs):
            dist = data.live_distribution if epoch == 0 else distributions(
                self.policy, self.adapted_params(data.inner, self.second_order), data.outer.batch
            )
            loss = -self.outer_surrogate(data, dist, clip=self.options.ppo_clip)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        surrogate, kl = self.evaluate_outer(data)
        return {"kl": kl, "surrogate": surrogate}

    def extra_state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict()} if self.optimizer else {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
