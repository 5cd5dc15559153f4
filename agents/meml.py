"""MEML: model-enhanced meta-learning (article section 3), first order in the inner steps.

Notation of the article: theta_0 the meta-parameters, theta_t the parameters adapted to task
t, alpha the inner step size (``--inner-lr``), beta the enhancement step size, gamma the meta
step size, lambda the precision of the Gaussian prior ``log p(theta_t | theta_0) =
-lambda/2 ||theta_t - theta_0||^2``.

Inner loop, ``--inner-steps`` times, each on fresh episodes sampled with the current theta_t::

    theta_t <- theta_t + alpha * grad J_t(theta_t)                 (policy-gradient step)
    theta_t <- theta_t + beta * grad log p(theta_t | theta_0)      (enhancement step)
             = theta_t - beta * lambda * (theta_t - theta_0)

The enhancement is a pull back toward theta_0. ``--enhancement proximal`` takes it implicitly
(the prior's gradient at the new point), ``theta_t <- theta_0 + (theta_t - theta_0) / (1 +
beta * lambda)``: equal to first order in beta * lambda, and stable for any lambda.

Outer update (``--meta-update first-order``)::

    theta_0 <- theta_0 + gamma * grad_theta_0 E_t[log p(theta_t | theta_0)]
             = theta_0 + gamma * lambda * E_t[theta_t - theta_0]

a move of theta_0 toward the enhanced task parameters. The inner steps are taken on detached
parameters, so no second-order graph exists and cost grows linearly with the inner steps.

``--meta-update implicit`` (iMAML, Rajeswaran et al. 2019) instead treats theta_t as the
maximiser of ``J_t(theta) - lambda/2 ||theta - theta_0||^2``, whose Jacobian is
``d theta_t / d theta_0 = (I - H_t / lambda)^-1`` with ``H_t`` the Hessian of J_t at theta_t,
and steps ``theta_0 <- theta_0 + gamma * E_t[(I - H_t / lambda)^-1 grad J_t(theta_t)]``, the
gradient of the return on episodes sampled after adaptation, solved by conjugate gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from metarl.config import ConfigError, option
from metarl.learn.learner import Episodes, MetaLearner, Rollouts, Timer
from metarl.learn.optim import conjugate_gradient, hessian_vector_product
from metarl.learn.surrogates import inner_gradient
from metarl.policies.params import Params, detach_params, flat, unflat
from metarl.registry import register_learner


@dataclass(frozen=True)
class MEMLOptions:
    prior_lambda: float = option(1.0, "precision lambda of the Gaussian prior around theta_0",
                                 above=0.0)
    enhance_lr: float = option(0.1, "enhancement step size beta", above=0.0)
    enhancement: str = option(
        "gradient",
        "enhancement step: 'gradient' theta - beta*lambda*(theta - theta_0) (needs "
        "beta*lambda <= 1), or 'proximal' theta_0 + (theta - theta_0)/(1 + beta*lambda)",
        choices=("gradient", "proximal"),
    )
    meta_lr: float = option(1.0, "meta step size gamma", above=0.0)
    meta_update: str = option(
        "first-order",
        "outer update: 'first-order' gamma*lambda*E[theta_t - theta_0], or 'implicit' "
        "(iMAML conjugate gradient on I - H/lambda)",
        choices=("first-order", "implicit"),
    )
    implicit_cg_iters: int = option(5, "implicit update: conjugate-gradient iterations", min=1)


@register_learner("meml")
class MEML(MetaLearner):
    Options = MEMLOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pull = self.options.enhance_lr * self.options.prior_lambda
        if self.options.enhancement == "gradient" and pull > 1.0:
            raise ConfigError(
                f"--enhance-lr * --prior-lambda = {pull:g} > 1: the gradient enhancement step "
                "would overshoot theta_0; lower them or use --enhancement proximal"
            )

    @property
    def pull(self) -> float:
        """The fraction of ``theta_t - theta_0`` that one enhancement step removes."""
        pull = self.options.enhance_lr * self.options.prior_lambda
        return pull if self.options.enhancement == "gradient" else pull / (1.0 + pull)

    def enhance(self, params: Params) -> Params:
        """The enhancement step toward theta_0 (the policy's own parameters)."""
        theta_0 = self.meta_params()
        return {key: value - self.pull * (value - theta_0[key]) for key, value in params.items()}

    def inner_step(self, params: Params, episodes: Episodes, create_graph: bool) -> Params:
        """One inner policy-gradient step, then the enhancement step toward theta_0; first
        order (detached) whatever ``create_graph`` says."""
        step = super().inner_step(detach_params(params), episodes, create_graph=False)
        return detach_params(self.enhance(step))

    def outer_update(self, rollouts: Rollouts, timer: Timer) -> dict[str, float]:
        theta_0 = self.meta_params()
        params = rollouts.adapted
        if self.options.meta_update == "first-order":
            direction = {
                key: self.options.prior_lambda * (value - theta_0[key]).mean(dim=0)
                for key, value in params.items()
            }
        else:
            direction = self.implicit_gradient(params, rollouts.inner[-1], rollouts.after)
        displacement = flat([value - theta_0[key] for key, value in params.items()])
        with torch.no_grad():
            for key, parameter in self.policy.named_parameters():
                parameter.add_(self.options.meta_lr * direction[key])
        return {
            "displacement": float(displacement.norm() / len(rollouts.tasks) ** 0.5),
            "meta_step_norm": self.options.meta_lr * float(flat(list(direction.values())).norm()),
        }

    def implicit_gradient(self, adapted: Params, inner: Episodes, after: Episodes) -> Params:
        """``E_t[(I - H_t / lambda)^-1 grad J_t(theta_t)]``, every task in one CG solve.

        The systems of the tasks are independent, so one conjugate-gradient run on the
        block-diagonal system of all tasks solves them together. ``H_t`` is the Hessian of the
        inner surrogate on the last inner episodes; ``grad J_t`` the policy gradient on the
        episodes sampled after adaptation.
        """
        phi = {key: value.clone().requires_grad_() for key, value in adapted.items()}
        leaves = list(phi.values())
        gradient = flat(inner_gradient(self.policy, phi, after.batch, after.advantages, False))
        inner_graph = inner_gradient(self.policy, phi, inner.batch, inner.advantages, True)
        solution, _ = conjugate_gradient(
            self.regularised_hessian_product(inner_graph, leaves), gradient,
            self.options.implicit_cg_iters,
        )
        return {
            key: value.mean(dim=0).detach()
            for key, value in zip(phi, unflat(solution, leaves), strict=True)
        }

    def regularised_hessian_product(
        self, gradient: Sequence[Tensor], leaves: list[Tensor]
    ) -> Callable[[Tensor], Tensor]:
        """``v -> v - H v / lambda`` for the Hessian ``H`` whose gradient graph is ``gradient``."""

        def product(v: Tensor) -> Tensor:
            hessian = flat(hessian_vector_product(gradient, leaves, unflat(v, leaves)))
            return v - hessian / self.options.prior_lambda

        return product
