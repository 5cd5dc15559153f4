"""Outer updates of the gradient meta-learners, each written once.

- :func:`trust_region_update`: theta_0 takes a KL trust-region step along a meta-gradient,
  every trial theta_0 scored by replaying the inner steps and measuring the surrogate and KL
  of the adapted policies on the post-adaptation episodes (:class:`PostAdaptation`). MAML's
  TRPO and MEML's ``--meta-optimizer trpo`` are this step with their own direction and metric.
- :class:`MAMLOuter`: theta_0 maximises the return after adaptation through the inner
  policy-gradient steps, by TRPO (exact, subsampled or identity-Jacobian metric) or a clipped
  surrogate with Adam (ProMP-style). MAML and MBML use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.distributions import Distribution

from metarl.config import option
from metarl.learn.optim import hessian_vector_product, trust_region_step
from metarl.learn.surrogates import (
    clipped_surrogate,
    distributions,
    identity_jacobian_fisher,
    inner_gradient,
    kl_hessian_product,
    log_probs_under,
    mean_kl,
)
from metarl.policies.mlp import MLPPolicy
from metarl.policies.params import Params, detach_params, flat, per_task, unflat

if TYPE_CHECKING:
    from metarl.learn.gradient import Episodes, GradientLearner, Rollouts


@dataclass(frozen=True)
class TrustRegion:
    """The settings of a KL trust-region step."""

    max_kl: float
    cg_iterations: int = 10
    damping: float = 1e-5
    line_search_steps: int = 15
    backtrack_ratio: float = 0.8


class PostAdaptation:
    """The outer objective on the post-adaptation episodes ``after``: the importance-weighted
    surrogate of adapted policies, and their KL to the policies ``adapted`` that sampled the
    episodes (computed once, without gradient)."""

    def __init__(self, policy: MLPPolicy, adapted: Params, after: Episodes) -> None:
        self.policy = policy
        self.after = after
        with torch.no_grad():
            self.old = distributions(policy, adapted, after.batch)
        self.old_log_probs = log_probs_under(self.old, after.batch)

    def surrogate(self, dist: Distribution, clip: float | None = None) -> Tensor:
        """The (clipped) surrogate under the adapted policies ``dist`` (grouped)."""
        batch = self.after.batch
        return clipped_surrogate(log_probs_under(dist, batch), self.old_log_probs,
                                 self.after.advantages, batch, clip).mean()

    def evaluate(self, params: Params) -> tuple[float, float]:
        """(surrogate, mean KL) of the adapted ``params``, without gradient."""
        with torch.no_grad():
            dist = distributions(self.policy, detach_params(params), self.after.batch)
            return float(self.surrogate(dist)), float(mean_kl(self.old, dist, self.after.batch))


def trust_region_update(
    theta: Sequence[Tensor], direction: Tensor, metric: Callable[[Tensor], Tensor],
    objective: PostAdaptation, replay: Callable[[], Params], base: float,
    settings: TrustRegion,
) -> dict[str, float]:
    """One trust-region step of ``theta`` (theta_0's tensors, in place) along the flat
    meta-gradient ``direction``, with the metric products ``metric``; a trial is scored by
    ``objective`` on ``replay()``, the inner steps repeated from the trial theta_0, against
    ``base``, the surrogate before the step. Returns the step's metrics."""
    result = trust_region_step(
        theta, direction, metric, lambda: objective.evaluate(replay()), base, settings.max_kl,
        settings.cg_iterations, settings.damping, settings.line_search_steps,
        settings.backtrack_ratio,
    )
    return {
        "kl": result.kl,
        "surrogate_gain": result.surrogate_gain,
        "line_search_steps": result.line_search_steps,
        "step_accepted": float(result.accepted),
    }


@dataclass(frozen=True)
class MAMLOuterOptions:
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


class MAMLOuter:
    """theta_0 <- argmax E_t[J_t(theta_t)] on the post-adaptation episodes, differentiating
    through the inner policy-gradient steps (second order unless ``first_order``): TRPO or
    the clipped surrogate with Adam (see :class:`MAMLOuterOptions`).

    The TRPO metric ``exact`` is the Hessian of the mean KL with respect to theta_0 through
    the inner steps, ``mean_t J_t^T F_t J_t``: ``F_t`` the Fisher of task t's adapted policy,
    ``J_t`` the inner steps' Jacobian, a product of ``I + lr H`` (``H`` the inner objective's
    Hessian). A product with it chains Hessian-vector products of the inner objective around
    one Fisher product, each batched over tasks, on ``fvp_subsample`` of the inner and outer
    episodes. ``identity`` takes ``J_t`` as the identity.
    """

    def __init__(self, learner: GradientLearner, options: MAMLOuterOptions) -> None:
        self.learner = learner
        self.options = options
        self.policy = learner.policy
        self.optimizer = (
            torch.optim.Adam(self.policy.parameters(), lr=options.outer_lr)
            if options.outer == "ppo" else None
        )

    @property
    def second_order(self) -> bool:
        return not self.options.first_order

    def update(self, rollouts: Rollouts) -> dict[str, float]:
        objective = PostAdaptation(self.policy, detach_params(rollouts.adapted), rollouts.after)
        live = distributions(self.policy, rollouts.adapted, rollouts.after.batch)
        if self.options.outer == "trpo":
            return self.trpo_update(rollouts, objective, live)
        return self.ppo_update(rollouts, objective, live)

    def trpo_update(self, rollouts: Rollouts, objective: PostAdaptation,
                    live: Distribution) -> dict[str, float]:
        options = self.options
        theta = list(self.policy.parameters())
        surrogate = objective.surrogate(live)
        gradient = flat(torch.autograd.grad(surrogate, theta))
        exact = options.fvp == "exact" and self.second_order
        metric = self.exact_fvp(rollouts) if exact else identity_jacobian_fisher(
            self.policy,
            rollouts.after.subsample(options.fvp_subsample, self.learner.sampler.generator).batch,
            detach_params(rollouts.adapted),
        )
        settings = TrustRegion(options.max_kl, options.cg_iters, options.cg_damping,
                               options.ls_max_steps, options.ls_backtrack_ratio)
        return trust_region_update(
            theta, gradient, metric, objective, lambda: self.learner.replay(rollouts.inner),
            float(surrogate.detach()), settings,
        )

    def exact_fvp(self, rollouts: Rollouts) -> Callable[[Tensor], Tensor]:
        """Products with the exact metric (see the class docstring)."""
        fraction, generator = self.options.fvp_subsample, self.learner.sampler.generator
        lr = self.learner.config.inner_lr
        steps = []  # per inner step: its per-task leaves and the inner gradients there
        params = per_task(self.learner.meta_params(), rollouts.after.batch.n_tasks)
        for episodes in (episodes.subsample(fraction, generator) for episodes in rollouts.inner):
            leaves = [value.detach().clone().requires_grad_() for value in params.values()]
            grads = inner_gradient(
                self.policy, dict(zip(params, leaves)), episodes.batch, episodes.advantages, True
            )
            steps.append((leaves, grads))
            params = {key: (leaf + lr * grad).detach()
                      for key, leaf, grad in zip(params, leaves, grads)}
        fisher = kl_hessian_product(
            self.policy, rollouts.after.subsample(fraction, generator).batch, params
        )

        def jacobian_product(vectors: list[Tensor], order: Sequence[Any]) -> list[Tensor]:
            for leaves, grads in order:
                hessian = hessian_vector_product(grads, leaves, vectors)
                vectors = [v + lr * h for v, h in zip(vectors, hessian)]
            return vectors

        theta = list(self.policy.parameters())

        def product(v: Tensor) -> Tensor:
            directions = [d.expand_as(leaf) for d, leaf in zip(unflat(v, theta), steps[0][0])]
            forward = jacobian_product(directions, steps)
            return flat([w.sum(dim=0) for w in jacobian_product(fisher(forward), steps[::-1])])

        return product

    def ppo_update(self, rollouts: Rollouts, objective: PostAdaptation,
                   live: Distribution) -> dict[str, float]:
        assert self.optimizer is not None
        for epoch in range(self.options.ppo_epochs):
            dist = live if epoch == 0 else distributions(
                self.policy, self.learner.replay(rollouts.inner, self.second_order),
                rollouts.after.batch,
            )
            loss = -objective.surrogate(dist, clip=self.options.ppo_clip)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        surrogate, kl = objective.evaluate(self.learner.replay(rollouts.inner))
        return {"kl": kl, "surrogate": surrogate}

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict()} if self.optimizer else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
