"""MEML: the enhancement step, the first-order outer update, and learning on Navigation2D."""

import numpy as np
import pytest
import torch

import metarl.agents.meml  # noqa: F401  (registers "meml")
from metarl.config import ConfigError, TrainConfig
from metarl.learn.advantages import advantages
from metarl.learn.surrogates import inner_surrogate
from metarl.registry import get_family
from metarl.run.evaluation import evaluate
from metarl.run.factory import build_learner


def make(inner_steps=2, **options):
    config = TrainConfig(
        family="navigation2d", algo="meml", seed=1, meta_batch_size=4, episodes_per_task=5,
        inner_steps=inner_steps, hidden_sizes=(16,), algo_options=options,
    )
    return build_learner(config, torch.device("cpu"))


def tasks(learner, n=4):
    return learner.family.sample_tasks(n, np.random.default_rng(7))


def adapted(learner, steps):
    """theta_t after ``steps`` inner steps through the public verbs (sample, adapt)."""
    params = learner.meta_params()
    for _ in range(steps):
        params = learner.adapt(params, learner.sample(tasks(learner), params))
    return params


def max_distance(params, reference):
    return max(float((value.detach() - reference[key]).abs().max())
               for key, value in params.items())


def test_huge_prior_precision_keeps_adapted_params_at_theta_0():
    proximal = make(prior_lambda=1e9, enhancement="proximal")
    assert max_distance(adapted(proximal, 3), proximal.meta_params()) < 1e-6
    exact = make(prior_lambda=1e4, enhance_lr=1e-4)  # beta * lambda = 1: back onto theta_0
    assert max_distance(adapted(exact, 3), exact.meta_params()) < 1e-6
    loose = make(prior_lambda=1e-3)
    assert max_distance(adapted(loose, 3), loose.meta_params()) > 1e-3


def test_overshooting_gradient_enhancement_is_rejected():
    with pytest.raises(ConfigError, match="overshoot"):
        make(prior_lambda=50.0, enhance_lr=0.1)


def test_outer_update_is_mean_displacement_toward_enhanced_task_params():
    options = {"prior_lambda": 2.0, "enhance_lr": 0.2, "meta_lr": 0.3}
    learner, replica = make(**options), make(**options)
    theta_0 = {key: value.clone() for key, value in learner.meta_params().items()}
    task_params = adapted(replica, 2)  # same seeds, same episodes as the step below
    metrics = learner.step(tasks(learner))
    for key, value in learner.meta_params().items():
        expected = theta_0[key] + 0.3 * 2.0 * (task_params[key] - theta_0[key]).mean(dim=0)
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
    assert metrics["displacement"] > 0 and metrics["meta_step_norm"] > 0


def test_no_second_order_graph(monkeypatch):
    learner = make(inner_steps=3)
    calls = []
    grad = torch.autograd.grad

    def recording_grad(*args, **kwargs):
        calls.append(bool(kwargs.get("create_graph", False)))
        return grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", recording_grad)
    learner.step(tasks(learner))
    assert len(calls) == 3 and not any(calls)
    # adapted parameters are not a function of the live theta_0
    assert not any(value.requires_grad for value in adapted(learner, 2).values())


def test_implicit_update_reduces_to_post_adaptation_gradient_for_huge_lambda():
    learner = make(inner_steps=1, meta_update="implicit", prior_lambda=1e9,
                   enhancement="proximal")
    theta = learner.meta_params()
    batch = learner.sample(tasks(learner), theta)
    after = learner.sample(tasks(learner), theta)
    params = learner.adapt(theta, batch)
    direction = learner.implicit_gradient(
        params, learner.with_advantages(batch), learner.with_advantages(after)
    )
    phi = {key: value.clone().requires_grad_() for key, value in params.items()}
    objective = inner_surrogate(learner.policy, phi, after, advantages(after, 0.99, 1.0)).sum()
    expected = torch.autograd.grad(objective, list(phi.values()))
    for value, grad in zip(direction.values(), expected, strict=True):
        torch.testing.assert_close(value, grad.mean(dim=0), rtol=1e-4, atol=1e-6)
    assert all(np.isfinite(value) for value in learner.step(tasks(learner)).values())


def test_meml_improves_after_adaptation_on_held_out_navigation_tasks():
    torch.set_num_threads(1)
    config = TrainConfig(family="navigation2d", algo="meml", seed=0, meta_batch_size=10,
                         episodes_per_task=10, inner_steps=2)
    learner = build_learner(config, torch.device("cpu"))
    for _ in range(8):
        learner.step(learner.family.sample_tasks(config.meta_batch_size, learner.rng))
    test = get_family("navigation2d").test_tasks(20, seed=0)
    result = evaluate(learner, test, adapt_steps=2, episodes=10, seed=0)
    before, after = result.mean_return[0], result.mean_return[-1]
    print(result.mean_return)
    assert after > before + 5.0, result.mean_return
