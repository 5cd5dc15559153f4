"""MAML for reinforcement learning (Finn et al. 2017) with a trust-region or clipped outer step.

Inner loop, per task t: ``theta_t = theta_0 + alpha * grad J_t(theta_0)`` from episodes sampled
with ``theta_0`` (LVC surrogate, see :func:`metarl.pg.inner_surrogate`). Outer loop:
``theta_0 <- argmax E_t[J_t(theta_t)]`` on fresh episodes sampled with ``theta_t``, through the
inner step (second order unless ``--first-order``), with TRPO (default) or a PPO-clipped
surrogate and Adam (ProMP-style).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution

from metarl.advantages import advantages
from metarl.config import option
from metarl.episodes import EpisodeBatch
from metarl.learner import MetaLearner
from metarl.pg import (
    clipped_surrogate,
    detach_distribution,
    detach_params,
    hessian_vector_product,
    inner_gradient,
    mean_kl,
    policy_gradient_step,
)
from metarl.policy import Params, per_task
from metarl.registry import register_learner
from metarl.trpo import flat, trust_region_step, unflat


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
class Episodes:
    """A batch with its (fixed) advantages."""

    batch: EpisodeBatch
    advantages: Tensor

    def subsample(self, fraction: float, generator: torch.Generator) -> Episodes:
        if fraction >= 1.0:
            return self
        columns = self.batch.sample_columns(fraction, generator)
        return Episodes(self.batch.select_columns(columns), self.advantages[:, columns])


@dataclass
class OuterData:
    """What the outer step needs: the inner episodes and the post-adaptation episodes."""

    inner: list[Episodes]
    outer: Episodes
    old_log_probs: Tensor
    old_distribution: Distribution
    """The adapted policies on the outer episodes (grouped), without gradient."""
    adapted: Params
    live_distribution: Distribution
    """The same policies with the graph of the inner steps back to theta_0, for the outer
    step (which so need not redo the inner steps)."""


@register_learner("maml")
class MAML(MetaLearner):
    Options = MAMLOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.optimizer = (
            torch.optim.Adam(self.policy.parameters(), lr=self.options.outer_lr)
            if self.options.outer == "ppo" else None
        )

    # --- data -------------------------------------------------------------------------------
    def collect(self, tasks: Sequence[Any], timings: dict[str, float]) -> OuterData:
        """Sample and adapt ``inner_steps`` times, then sample after adaptation."""
        params = self.policy.parameters_dict()
        inner = []
        for _ in range(self.config.inner_steps):
            start = time.perf_counter()
            batch = self.sample(tasks, detach_params(params))
            timings["sampling"] += time.perf_counter() - start
            start = time.perf_counter()
            episodes = self.with_advantages(batch)
            params = self.inner_step(params, episodes)
            inner.append(episodes)
            timings["inner"] += time.perf_counter() - start
        return self.sample_after_adaptation(tasks, inner, params, timings)

    def with_advantages(self, batch: EpisodeBatch) -> Episodes:
        return Episodes(batch, advantages(batch, self.config.gamma, self.config.gae_lambda))

    def inner_step(self, params: Params, episodes: Episodes) -> Params:
        """One inner step from live ``params``, kept differentiable (second order unless
        ``first_order``) so that the outer step reuses it instead of recomputing it."""
        return policy_gradient_step(
            self.policy, params, episodes.batch, episodes.advantages, self.config.inner_lr,
            create_graph=not self.options.first_order,
        )

    def sample_after_adaptation(
        self, tasks: Sequence[Any], inner: list[Episodes], params: Params,
        timings: dict[str, float],
    ) -> OuterData:
        """Fresh episodes with the adapted ``params`` (live, see :meth:`inner_step`): the data of
        the outer step."""
        adapted = detach_params(params)
        start = time.perf_counter()
        outer = self.sample(tasks, adapted)
        timings["sampling"] += time.perf_counter() - start
        with torch.no_grad():
            old = outer.distributions(self.policy, adapted)
        return OuterData(
            inner=inner,
            outer=self.with_advantages(outer),
            old_log_probs=outer.log_probs_under(old),
            old_distribution=old,
            adapted=adapted,
            live_distribution=outer.distributions(self.policy, params),
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
            outer.batch.log_probs_under(dist), data.old_log_probs, outer.advantages, outer.batch,
            clip,
        ).mean()

    # --- the meta-update ------------------------------------------------------------------------
    def step(self, tasks: Sequence[Any]) -> dict[str, float]:
        timings = {"sampling": 0.0, "inner": 0.0, "outer": 0.0}
        data = self.collect(tasks, timings)
        start = time.perf_counter()
        stats = self.trpo_update(data) if self.options.outer == "trpo" else self.ppo_update(data)
        timings["outer"] = time.perf_counter() - start
        return {
            "return_before": float(data.inner[0].batch.task_returns().mean()),
            "return_after": float(data.outer.batch.task_returns().mean()),
            **stats,
            **{f"{key}_seconds": value for key, value in timings.items()},
        }

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
            dist = data.outer.batch.distributions(self.policy, trial)
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
        fisher = self.fisher_product(data.outer.subsample(fraction, generator).batch, params)

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
        fisher = self.fisher_product(outer, data.adapted)
        theta = list(self.policy.parameters())

        def product(v: Tensor) -> Tensor:
            directions = [d.expand_as(p) for d, p in zip(unflat(v, theta), data.adapted.values())]
            return flat([h.sum(dim=0) for h in fisher(directions)])

        return product

    def fisher_product(
        self, outer: EpisodeBatch, adapted: Params
    ) -> Callable[[list[Tensor]], list[Tensor]]:
        """Products with the Hessian of the mean KL with respect to per-task ``adapted``
        parameters (each task's Fisher over the number of tasks), on per-task directions."""
        phi = {key: value.detach().requires_grad_() for key, value in adapted.items()}
        dist = outer.distributions(self.policy, phi)
        kl = mean_kl(detach_distribution(dist), dist, outer)
        leaves = list(phi.values())
        grad_kl = torch.autograd.grad(kl, leaves, create_graph=True)
        return lambda directions: hessian_vector_product(grad_kl, leaves, directions)

    def ppo_update(self, data: OuterData) -> dict[str, float]:
        assert self.optimizer is not None
        for epoch in range(self.options.ppo_epochs):
            dist = data.live_distribution if epoch == 0 else data.outer.batch.distributions(
                self.policy,
                self.adapted_params(data.inner, create_graph=not self.options.first_order),
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
