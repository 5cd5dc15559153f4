"""The TRPO metric: the exact Fisher-vector product (the Hessian of the KL through the inner
steps) agrees with finite differences of the KL's gradient, and the identity-Jacobian metric
is detectably different from it.

Finite differences see the inner objective on fixed samples, whose Hessian lacks the score
terms the LVC surrogate adds on purpose (checked in test_meta_gradient.py); so here the inner
objective is the plain fixed-sample one, and the test checks the second-order machinery."""

import numpy as np
import pytest
import torch

import metarl.learn.surrogates
from metarl.config import TrainConfig
from metarl.learn.learner import Timer
from metarl.learn.optim import conjugate_gradient
from metarl.learn.surrogates import (
    detach_distribution,
    distributions,
    identity_jacobian_fisher,
    mean_kl,
)
from metarl.policies.params import detach_params, flat, unflat
from metarl.run.factory import build_learner


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_exact_metric_matches_finite_differences(inner_steps, monkeypatch):
    monkeypatch.setattr(metarl.learn.surrogates, "magic_box", lambda x: x)
    config = TrainConfig(meta_batch_size=3, episodes_per_task=4, inner_steps=inner_steps,
                         inner_lr=0.5, hidden_sizes=(16,), algo_options={"fvp_subsample": 1.0})
    learner = build_learner(config, torch.device("cpu"))
    tasks = learner.family.sample_tasks(3, np.random.default_rng(0))
    rollouts = learner.collect(tasks, Timer(learner.phases))
    outer, adapted = rollouts.after.batch, detach_params(rollouts.adapted)
    theta = list(learner.policy.parameters())
    old = detach_distribution(distributions(learner.policy, adapted, outer))

    def kl_gradient() -> torch.Tensor:
        replayed = learner.replay(rollouts.inner, create_graph=True)
        kl = mean_kl(old, distributions(learner.policy, replayed, outer), outer)
        return flat(torch.autograd.grad(kl, theta))

    v = torch.randn(sum(p.numel() for p in theta), generator=torch.Generator().manual_seed(0))
    v /= v.norm()
    start = [p.detach().clone() for p in theta]
    eps = 1e-3
    shifted = []
    for sign in (1, -1):
        with torch.no_grad():
            for p, p0, d in zip(theta, start, unflat(v, theta)):
                p.copy_(p0 + sign * eps * d)
        shifted.append(kl_gradient())
    with torch.no_grad():
        for p, p0 in zip(theta, start):
            p.copy_(p0)
    finite_difference = (shifted[0] - shifted[1]) / (2 * eps)
    exact = learner.outer.exact_fvp(rollouts)(v)
    identity = identity_jacobian_fisher(learner.policy, outer, adapted)(v)
    assert relative_error(exact, finite_difference) < 0.02
    assert relative_error(identity, finite_difference) > 0.1


def test_conjugate_gradient_solves_a_small_system():
    a = torch.tensor([[4.0, 1.0], [1.0, 3.0]])
    b = torch.tensor([1.0, 2.0])
    x, residual = conjugate_gradient(lambda v: a @ v, b, iterations=10)
    torch.testing.assert_close(a @ x, b)
    torch.testing.assert_close(residual, b - a @ x)
