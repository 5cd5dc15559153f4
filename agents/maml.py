"""MAML for reinforcement learning (Finn et al. 2017) with a trust-region or clipped outer step.

Inner loop, per task t: ``theta_t = theta_0 + alpha * grad J_t(theta_0)`` from episodes sampled
with ``theta_0`` (LVC surrogate, see :func:`metarl.learn.surrogates.inner_surrogate`). Outer loop:
``theta_0 <- argmax E_t[J_t(theta_t)]`` on fresh episodes sampled with ``theta_t``, through the
inner step (second order unless ``--first-order``), with TRPO (default) or a PPO-clipped
surrogate and Adam (ProMP-style): :class:`metarl.learn.outer.MAMLOuter`.
"""

from __future__ import annotations

from typing import Any

from metarl.learn.gradient import GradientLearner, Rollouts
from metarl.learn.learner import Timer
from metarl.learn.outer import MAMLOuter, MAMLOuterOptions
from metarl.registry import register_learner


@register_learner("maml")
class MAML(GradientLearner):
    """The policy-gradient inner step of :class:`GradientLearner` and :class:`MAMLOuter`."""

    Options = MAMLOuterOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outer = MAMLOuter(self, self.options)

    @property
    def second_order(self) -> bool:
        return self.outer.second_order

    def outer_update(self, rollouts: Rollouts, timer: Timer) -> dict[str, float]:
        return self.outer.update(rollouts)

    def extra_state(self) -> dict[str, Any]:
        return self.outer.state_dict()

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.outer.load_state_dict(state)
