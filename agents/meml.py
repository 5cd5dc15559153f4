"""MEML: model-enhanced meta-learning (article section 3), with an implicit outer gradient.

Notation of the article: theta_0 the meta-parameters, theta_t the parameters adapted to task
t, alpha the inner step size (``--inner-lr``), beta the enhancement step size
(``--enhance-lr``), lambda the precision of the Gaussian prior ``log p(theta_t | theta_0) =
-lambda/2 ||theta_t - theta_0||^2`` (``--prior-lambda``). alpha and lambda are held per
parameter tensor (one value for each weight matrix, each bias and the log std) and are
meta-learned by default.

Inner loop, ``--inner-steps`` times, each on fresh episodes sampled with the current theta_t::

    theta_t <- theta_t + alpha * grad J_t(theta_t)                 (policy-gradient step)
    theta_t <- theta_t + beta * grad log p(theta_t | theta_0)      (enhancement step)
             = theta_t - p * (theta_t - theta_0),   p = beta * lambda

``--enhancement proximal`` takes the pull implicitly (the prior's gradient at the new point),
``p = beta * lambda / (1 + beta * lambda)``. A fixed point of the inner iteration satisfies
``(1 - p) alpha grad J_t(theta) = p (theta - theta_0)``: the loop approaches the maximiser of
the proximal problem ``J_t(theta) - mu/2 ||theta - theta_0||^2`` with ``mu = p / (alpha (1 -
p))`` (``beta * lambda / alpha`` for the proximal form), see :func:`fixed_point_precisions`.

Outer update (``--meta-update implicit``, the default) maximises the return after
adaptation, treating theta_t as that proximal optimum (iMAML, Rajeswaran et al. 2019). With
``M = diag(mu)``, ``H_t`` the Hessian of J_t at theta_t and ``g_t = grad J_t(theta_t)`` on
fresh episodes sampled with theta_t::

    y_t = (M - H_t)^-1 g_t
    grad_theta_0 J_t(theta_t) = M y_t              (= (I - H_t / mu)^-1 g_t for one mu)
    d J_t(theta_t) / d log mu_i = -mu_i y_i (theta_t - theta_0)_i

all tasks in one conjugate-gradient solve of the block-diagonal system (:func:`implicit_solve`).
By default ``mu`` is the precision whose proximal optimum moves with theta_0 as the
``--inner-steps`` iterations actually do (:func:`step_precisions`), not their distant limit.
The meta-gradient moves theta_0 (Adam, or a trust-region step). The gradient in log mu,
chained through ``mu(lambda, alpha)``, meta-learns the prior strength lambda
(``--learn-prior``): the article's step 4, "use the meta-learning model to optimise the
enhancement process". The step sizes alpha (``--learn-inner-lr``) get the first-order
hypergradient through the unrolled inner steps with identity Jacobians, where ``d theta_t /
d log alpha = theta_t - theta_0`` per tensor, so ``dJ/d log alpha = g . (theta_t - theta_0)``.
No graph runs through the inner steps: time is linear and memory flat in their number.

``--meta-update reptile`` is the article's own outer update, ``theta_0 <- theta_0 + gamma *
lambda * E_t[theta_t - theta_0]`` (Reptile's: theta_0 moves toward the adapted parameters,
which are never scored on episodes sampled after adaptation).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from metarl.config import ConfigError, option
from metarl.learn.gradient import Episodes, GradientLearner, Rollouts
from metarl.learn.learner import Timer
from metarl.learn.optim import conjugate_gradient, hessian_vector_product
from metarl.learn.outer import PostAdaptation, TrustRegion, trust_region_update
from metarl.learn.surrogates import identity_jacobian_fisher, inner_gradient
from metarl.policies.params import Params, detach_params, flat, is_per_task, per_task, unflat
from metarl.registry import register_learner

MAX_PULL = 0.95
"""Largest fraction of theta_t - theta_0 one gradient enhancement step may remove while
lambda is learned (at 1 the enhancement undoes the policy-gradient step)."""
FISHER_SUBSAMPLE = 0.2
"""Fraction of each task's post-adaptation episodes used for the trust-region metric."""


@dataclass(frozen=True)
class MEMLOptions:
    meta_update: str = option(
        "implicit",
        "outer update: 'implicit' maximises the return after adaptation through the proximal "
        "optimum (iMAML); 'reptile' is the article's theta_0 += gamma*lambda*E[theta_t - "
        "theta_0]", choices=("implicit", "reptile"),
    )
    prior_lambda: float = option(1.0, "precision lambda of the Gaussian prior around theta_0 "
                                 "(the initial value when learned)", above=0.0)
    enhance_lr: float = option(0.1, "enhancement step size beta", above=0.0)
    enhancement: str = option(
        "gradient",
        "enhancement step: 'gradient' theta - beta*lambda*(theta - theta_0) (needs "
        "beta*lambda < 1), or 'proximal' theta_0 + (theta - theta_0)/(1 + beta*lambda)",
        choices=("gradient", "proximal"),
    )
    meta_optimizer: str = option(
        "adam", "implicit update: 'adam' on the meta-gradient, or 'trpo' (the meta-gradient in "
        "a KL trust region, identity-Jacobian Fisher metric, line search)",
        choices=("adam", "trpo"),
    )
    meta_lr: float = option(
        1e-3, "implicit update with adam: its step size; reptile: the meta step size gamma",
        above=0.0,
    )
    max_kl: float = option(0.01, "TRPO trust region: max mean KL", above=0.0)
    learn_prior: bool = option(True, "implicit update: meta-learn lambda per parameter tensor")
    learn_inner_lr: bool = option(True, "implicit update: meta-learn alpha per parameter tensor")
    hyper_lr: float = option(0.02, "Adam step size on log lambda and log alpha", above=0.0)
    implicit_precision: str = option(
        "steps", "precision mu of the implicit system: 'steps' matches the --inner-steps "
        "iterations (first order in H), 'fixed-point' their limit p/(alpha(1-p))",
        choices=("steps", "fixed-point"),
    )
    hessian_episodes: str = option(
        "inner", "episodes that estimate H_t: 'inner' (the last inner step's, at theta_t), "
        "'after' (the post-adaptation ones, at theta_t), or 'path' (every inner step's, at the "
        "parameters that sampled them)", choices=("inner", "after", "path"),
    )
    hessian_subsample: float = option(
        1.0, "fraction of each task's episodes used for the Hessian products", above=0.0, max=1.0,
    )
    implicit_cg_iters: int = option(
        5, "implicit update: conjugate-gradient iterations (0: first order, M y = g)", min=0
    )
    implicit_damping: float = option(0.1, "implicit update: damping added to I - S H S",
                                     min=0.0)


# --- the enhancement and its proximal precision, per parameter tensor ------------------------
def pulls(prior: Tensor, enhance_lr: float, enhancement: str) -> Tensor:
    """The fraction p of ``theta_t - theta_0`` one enhancement step removes."""
    strength = enhance_lr * prior
    return strength if enhancement == "gradient" else strength / (1.0 + strength)


def fixed_point_precisions(pull: Tensor, inner_lr: Tensor) -> Tensor:
    """``mu = p / (alpha (1 - p))``: the precision of the proximal problem whose maximiser is
    the inner loop's fixed point."""
    return pull / (inner_lr * (1.0 - pull))


def step_precisions(pull: Tensor, inner_lr: Tensor, steps: int) -> Tensor:
    """The precision whose proximal optimum moves with theta_0 as ``steps`` inner iterations
    do, to first order in the Hessian: ``1 / (alpha sum_{j=1..K} (1-p)^j)``.

    The iteration ``theta_k = (1-p)(theta_{k-1} + alpha grad J(theta_{k-1})) + p theta_0`` has
    the Jacobian ``J_k = (1-p)(I + alpha H_k) J_{k-1} + p I``, whose term linear in the
    Hessians is ``L_K = sum_k alpha (1-p)^(K-k+1) H_k``; the proximal optimum's is ``H / mu``.
    So ``mu = 1 / (alpha sum_j (1-p)^j)``: ``1/(K alpha)`` for ``p = 0``, and
    :func:`fixed_point_precisions` as ``K`` grows.
    """
    keep = 1.0 - pull
    return 1.0 / (inner_lr * sum(keep**j for j in range(1, steps + 1)))


def implicit_solve(
    hessian_product: Callable[[Tensor], Tensor], gradient: Tensor, precision: Tensor,
    iterations: int, damping: float,
) -> Tensor:
    """``M y`` for ``y = (M (1 + damping) - H)^-1 gradient``, ``M = diag(precision)``: the
    gradient of ``J(theta*)`` in theta_0 for the proximal optimum theta* (flat vectors).

    Conjugate gradient on the symmetric ``(I (1 + damping) - S H S) w = S gradient``, ``S =
    M^-1/2``, whose identity part keeps it well scaled; ``M y = w / S``. With no
    ``iterations`` it returns ``gradient`` (first order). ``d J / d log mu = -(M y) * (theta* -
    theta_0)`` elementwise.
    """
    if iterations == 0:
        return gradient
    scale = precision.rsqrt()

    def product(w: Tensor) -> Tensor:
        return (1.0 + damping) * w - scale * hessian_product(scale * w)

    w, _ = conjugate_gradient(product, scale * gradient, iterations)
    return w / scale


@register_learner("meml")
class MEML(GradientLearner):
    Options = MEMLOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = self.options
        strength = options.enhance_lr * options.prior_lambda
        if options.enhancement == "gradient" and strength >= 1.0:
            raise ConfigError(
                f"--enhance-lr * --prior-lambda = {strength:g} >= 1: the gradient enhancement "
                "step would reach or overshoot theta_0; lower them or use --enhancement proximal"
            )
        if options.meta_update == "reptile" and (options.learn_prior or options.learn_inner_lr):
            raise ConfigError(
                "--meta-update reptile never scores the adapted parameters, so it cannot learn "
                "the enhancement; add --no-learn-prior --no-learn-inner-lr"
            )
        n = len(self.policy.parameters_dict())
        self.log_prior = torch.full((n,), math.log(options.prior_lambda), device=self.device,
                                    requires_grad=True)
        self.log_inner_lr = torch.full((n,), math.log(self.config.inner_lr), device=self.device,
                                       requires_grad=True)
        self.hyper_optimizer = torch.optim.Adam([self.log_prior, self.log_inner_lr],
                                                lr=options.hyper_lr)
        self.optimizer = (
            torch.optim.Adam(self.policy.parameters(), lr=options.meta_lr)
            if options.meta_update == "implicit" and options.meta_optimizer == "adam" else None
        )

    # --- the enhancement, per parameter tensor ------------------------------------------------
    def pull(self) -> Tensor:
        return pulls(self.log_prior.detach().exp(), self.options.enhance_lr,
                     self.options.enhancement)

    def inner_lr(self) -> Tensor:
        return self.log_inner_lr.detach().exp()

    def precision(self, log_prior: Tensor, log_inner_lr: Tensor) -> Tensor:
        """mu per tensor, as a (differentiable) function of log lambda and log alpha."""
        pull = pulls(log_prior.exp(), self.options.enhance_lr, self.options.enhancement)
        if self.options.implicit_precision == "steps":
            return step_precisions(pull, log_inner_lr.exp(), self.config.inner_steps)
        return fixed_point_precisions(pull, log_inner_lr.exp())

    # --- inner loop --------------------------------------------------------------------------
    def inner_step(self, params: Params, episodes: Episodes, create_graph: bool) -> Params:
        """One policy-gradient step per task, then the enhancement step toward theta_0; first
        order (detached) whatever ``create_graph`` says."""
        if not is_per_task(params):
            params = per_task(params, episodes.batch.n_tasks)
        leaves = {key: value.detach().clone().requires_grad_() for key, value in params.items()}
        grads = inner_gradient(self.policy, leaves, episodes.batch, episodes.advantages, False)
        theta_0 = self.meta_params()
        adapted = {}
        for (key, value), grad, lr, pull in zip(
            leaves.items(), grads, self.inner_lr(), self.pull(), strict=True
        ):
            stepped = value.detach() + lr * grad
            adapted[key] = stepped - pull * (stepped - theta_0[key])
        return adapted

    # --- outer update ------------------------------------------------------------------------
    def outer_update(self, rollouts: Rollouts, timer: Timer) -> dict[str, float]:
        theta_0 = self.meta_params()
        adapted = detach_params(rollouts.adapted)
        delta = {key: value - theta_0[key] for key, value in adapted.items()}
        stats = {"displacement": float(flat(list(delta.values())).norm())
                 / len(rollouts.tasks) ** 0.5}
        if self.options.meta_update == "reptile":
            stats.update(self.reptile_update(delta))
        else:
            stats.update(self.implicit_update(rollouts, adapted, delta))
        stats["prior_lambda"] = float(self.log_prior.detach().mean().exp())  # geometric means
        stats["inner_lr"] = float(self.log_inner_lr.detach().mean().exp())
        return stats

    def reptile_update(self, delta: Params) -> dict[str, float]:
        """theta_0 += gamma * lambda * E_t[theta_t - theta_0] (lambda per tensor)."""
        prior = self.log_prior.detach().exp()
        step = [self.options.meta_lr * lam * value.mean(dim=0)
                for lam, value in zip(prior, delta.values())]
        with torch.no_grad():
            for parameter, s in zip(self.policy.parameters(), step):
                parameter.add_(s)
        return {"meta_step_norm": float(flat(step).norm())}

    def implicit_update(self, rollouts: Rollouts, adapted: Params, delta: Params
                        ) -> dict[str, float]:
        """theta_0 along the implicit meta-gradient; lambda and alpha along theirs."""
        n_tasks = len(rollouts.tasks)
        meta_gradient, gradient = self.implicit_gradient(
            adapted, self.hessian_terms(rollouts, adapted), rollouts.after
        )
        like = list(adapted.values())
        delta_flat = flat(list(delta.values()))

        def per_tensor(x: Tensor) -> Tensor:
            """Per-tensor sums of a flat per-task vector, averaged over tasks."""
            sums = [t.reshape(n_tasks, -1).sum(dim=1) for t in unflat(x, like)]
            return torch.stack(sums, dim=1).mean(dim=0)

        direction = flat([value.mean(dim=0) for value in unflat(meta_gradient, like)])
        stats = self.move_theta_0(direction, rollouts)
        self.hyper_step(-per_tensor(meta_gradient * delta_flat), per_tensor(gradient * delta_flat))
        return {**stats, "meta_gradient_norm": float(direction.norm())}

    def implicit_gradient(
        self, adapted: Params, hessian: list[tuple[float, Params, Episodes]], after: Episodes
    ) -> tuple[Tensor, Tensor]:
        """Flat per-task ``(M y_t, g_t)``: every task's implicit meta-gradient, and its policy
        gradient at theta_t on the post-adaptation episodes. ``H_t`` is the weighted sum of
        the Hessians of the inner (LVC) surrogate on each ``(weight, params, episodes)`` of
        ``hessian``, at those params.

        The tasks' systems are independent, so one conjugate-gradient run on the
        block-diagonal system of all tasks solves them together.
        """
        phi = {key: value.clone().requires_grad_() for key, value in adapted.items()}
        gradient = flat(inner_gradient(self.policy, phi, after.batch, after.advantages, False))
        iterations = self.options.implicit_cg_iters
        terms = []  # (weight, leaves, gradient graph)
        for weight, params, episodes in hessian if iterations > 0 else []:
            leaves = {key: value.detach().clone().requires_grad_() for key, value in params.items()}
            graph = inner_gradient(self.policy, leaves, episodes.batch, episodes.advantages, True)
            terms.append((weight, list(leaves.values()), graph))
        like = list(phi.values())

        def hessian_product(v: Tensor) -> Tensor:
            directions = unflat(v, like)
            total = torch.zeros_like(v)
            for weight, leaves, graph in terms:
                total = total + weight * flat(hessian_vector_product(graph, leaves, directions))
            return total

        mu = self.precision(self.log_prior.detach(), self.log_inner_lr.detach())
        precision = flat([m.expand_as(leaf) for m, leaf in zip(mu, like)])
        meta_gradient = implicit_solve(hessian_product, gradient, precision, iterations,
                                       self.options.implicit_damping)
        return meta_gradient.detach(), gradient

    def hessian_terms(self, rollouts: Rollouts, adapted: Params
                      ) -> list[tuple[float, Params, Episodes]]:
        """Where H_t is estimated, per ``--hessian-episodes``: at theta_t on the post-adaptation
        or the last inner episodes; or ('path') the weighted sum, over the inner steps, of the
        Hessian on each step's episodes at the parameters that sampled them (step k weighted
        as the unrolled loop weighs it, ``(1-p)^(K-k+1)``, normalised)."""
        choice = self.options.hessian_episodes

        def subsample(episodes: Episodes) -> Episodes:
            return episodes.subsample(self.options.hessian_subsample, self.sampler.generator)

        if choice == "after":
            return [(1.0, adapted, subsample(rollouts.after))]
        if choice == "inner":
            return [(1.0, adapted, subsample(rollouts.inner[-1]))]
        keep = 1.0 - float(self.pull().log().mean().exp())
        steps = len(rollouts.inner)
        weights = [keep ** (steps - k) for k in range(steps)]
        params, terms = per_task(self.meta_params(), len(rollouts.tasks)), []
        for weight, episodes in zip(weights, rollouts.inner):
            terms.append((weight / sum(weights), params, subsample(episodes)))
            params = self.inner_step(params, episodes, create_graph=False)
        return terms

    def move_theta_0(self, direction: Tensor, rollouts: Rollouts) -> dict[str, float]:
        """Ascend along the flat meta-gradient ``direction``: one Adam step, or a trust-region
        step whose line search replays the inner steps at each trial theta_0, with the adapted
        policies' Fisher (identity Jacobian) as its metric."""
        theta = list(self.policy.parameters())
        if self.optimizer is not None:
            self.optimizer.zero_grad()
            for parameter, value in zip(theta, unflat(-direction, theta)):
                parameter.grad = value
            self.optimizer.step()
            return {}
        adapted = detach_params(rollouts.adapted)
        objective = PostAdaptation(self.policy, adapted, rollouts.after)
        subsample = rollouts.after.subsample(FISHER_SUBSAMPLE, self.sampler.generator).batch
        fisher = identity_jacobian_fisher(self.policy, subsample, adapted)
        base = float(objective.surrogate(objective.old))
        return trust_region_update(theta, direction, fisher, objective,
                                   lambda: self.replay(rollouts.inner), base,
                                   TrustRegion(self.options.max_kl))

    def hyper_step(self, log_mu_gradient: Tensor, inner_lr_gradient: Tensor) -> None:
        """Ascend log lambda along ``dJ/d log mu`` chained through ``mu(lambda, alpha)``, and
        log alpha along its unrolled first-order hypergradient (per tensor)."""
        options = self.options
        if not (options.learn_prior or options.learn_inner_lr):
            return
        log_prior = self.log_prior.detach().requires_grad_()
        log_mu = self.precision(log_prior, self.log_inner_lr.detach()).log()
        (prior_gradient,) = torch.autograd.grad(log_mu, log_prior, log_mu_gradient)
        self.hyper_optimizer.zero_grad()
        self.log_prior.grad = -prior_gradient if options.learn_prior else None
        self.log_inner_lr.grad = -inner_lr_gradient if options.learn_inner_lr else None
        self.hyper_optimizer.step()
        if options.enhancement == "gradient":
            with torch.no_grad():
                self.log_prior.clamp_(max=math.log(MAX_PULL / options.enhance_lr))

    # --- checkpointing -----------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        return {
            "log_prior": self.log_prior.detach().clone(),
            "log_inner_lr": self.log_inner_lr.detach().clone(),
            "hyper_optimizer": self.hyper_optimizer.state_dict(),
            **({"optimizer": self.optimizer.state_dict()} if self.optimizer else {}),
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.log_prior.copy_(state["log_prior"])
            self.log_inner_lr.copy_(state["log_inner_lr"])
        self.hyper_optimizer.load_state_dict(state["hyper_optimizer"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
