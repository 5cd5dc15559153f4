"""MEML: the enhancement step, the proximal precision, the implicit gradient and the learned
prior against direct solves and finite differences, no second-order graph, bad options, the
Reptile option, and learning on held-out tasks."""

import numpy as np
import pytest
import torch

from metarl.agents.meml import (
    fixed_point_precisions,
    implicit_solve,
    pulls,
    step_precisions,
)
from metarl.config import ConfigError, TrainConfig
from metarl.learn.surrogates import inner_gradient
from metarl.policies.params import flat, unflat
from metarl.registry import get_family
from metarl.run.evaluation import evaluate
from metarl.run.factory import build_learner


def make(inner_steps=2, family="navigation2d", **options):
    config = TrainConfig(
        family=family, algo="meml", seed=1, meta_batch_size=4, episodes_per_task=5,
        inner_steps=inner_steps, hidden_sizes=(16,), algo_options=options,
    )
    return build_learner(config, torch.device("cpu"))


def tasks(learner, n=4):
    return learner.family.sample_tasks(n, np.random.default_rng(7))


def adapted(learner, steps):
    """theta_t after ``steps`` inner steps through the public verbs (sample, adapt)."""
    params = learner.meta_params()
    for _ in range(steps):
        params = learner.adapt_params(params, learner.sample(tasks(learner), params))
    return params


def max_distance(params, reference):
    return max(float((value.detach() - reference[key]).abs().max())
               for key, value in params.items())


# --- the inner loop --------------------------------------------------------------------------
@pytest.mark.parametrize("enhancement", ["gradient", "proximal"])
def test_inner_step_is_policy_gradient_step_then_pull_toward_theta_0(enhancement):
    learner = make(prior_lambda=3.0, enhance_lr=0.2, enhancement=enhancement)
    with torch.no_grad():  # distinct per-tensor step sizes
        learner.log_inner_lr.copy_(torch.linspace(-3.0, -1.0, len(learner.log_inner_lr)))
    theta_0 = learner.meta_params()
    start = adapted(learner, 1)  # some theta_t away from theta_0
    batch = learner.sample(tasks(learner), start)
    result = learner.adapt_params(start, batch)
    phi = {key: value.clone().requires_grad_() for key, value in start.items()}
    episodes = learner.with_advantages(batch)
    grads = inner_gradient(learner.policy, phi, batch, episodes.advantages, False)
    pull = 0.6 if enhancement == "gradient" else 0.6 / 1.6  # beta * lambda, or its proximal form
    for (key, value), grad, lr in zip(start.items(), grads, learner.log_inner_lr.detach().exp()):
        stepped = value + float(lr) * grad
        expected = stepped + 0.2 * (-3.0) * (stepped - theta_0[key]) if enhancement == "gradient" \
            else theta_0[key] + (stepped - theta_0[key]) / (1 + 0.2 * 3.0)
        torch.testing.assert_close(result[key], expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(result[key], stepped - pull * (stepped - theta_0[key]),
                                   rtol=1e-5, atol=1e-6)


def test_huge_prior_precision_keeps_adapted_params_at_theta_0():
    proximal = make(prior_lambda=1e9, enhancement="proximal")
    assert max_distance(adapted(proximal, 3), proximal.meta_params()) < 1e-6
    loose = make(prior_lambda=1e-3)
    assert max_distance(adapted(loose, 3), loose.meta_params()) > 1e-3


def quadratic(dim=6, seed=0):
    """J(theta) = b.theta + theta^T H theta / 2 with H negative definite."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    hessian = -(a @ a.T / dim + 0.3 * torch.eye(dim, dtype=torch.float64))
    b = torch.randn(dim, generator=g, dtype=torch.float64)
    return hessian, b


def proximal_optimum(hessian, b, theta_0, mu):
    """argmax J(theta) - (theta - theta_0)^T M (theta - theta_0) / 2."""
    return torch.linalg.solve(torch.diag(mu) - hessian, b + mu * theta_0)


@pytest.mark.parametrize("enhancement", ["gradient", "proximal"])
def test_inner_loop_fixed_point_is_the_proximal_optimum_with_the_stated_precision(enhancement):
    hessian, b = quadratic()
    theta_0 = torch.linspace(-1, 1, 6, dtype=torch.float64)
    lr = torch.tensor([0.05, 0.05, 0.05, 0.1, 0.1, 0.1], dtype=torch.float64)
    prior = torch.tensor([2.0, 2.0, 2.0, 0.5, 0.5, 0.5], dtype=torch.float64)
    pull = pulls(prior, 0.3, enhancement)
    theta = theta_0.clone()
    for _ in range(3000):
        stepped = theta + lr * (b + hessian @ theta)
        theta = stepped - pull * (stepped - theta_0)
    mu = fixed_point_precisions(pull, lr)
    torch.testing.assert_close(theta, proximal_optimum(hessian, b, theta_0, mu))
    if enhancement == "proximal":  # mu = beta * lambda / alpha
        torch.testing.assert_close(mu, 0.3 * prior / lr)


def test_step_precision_matches_the_finite_inner_loop_to_first_order_in_the_hessian():
    hessian, _ = quadratic()
    lr, pull, steps = torch.tensor(0.1, dtype=torch.float64), torch.tensor(0.2), 3
    eye = torch.eye(6, dtype=torch.float64)

    def errors(scale):
        h = scale * hessian
        a = (1 - pull.double()) * (eye + lr * h)
        jacobian = torch.linalg.matrix_power(a, steps) + pull.double() * sum(
            torch.linalg.matrix_power(a, j) for j in range(steps))
        return [float(torch.linalg.matrix_norm(jacobian - torch.linalg.inv(eye - h / mu)))
                for mu in (step_precisions(pull.double(), lr, steps),
                           fixed_point_precisions(pull.double(), lr))]

    (steps_small, fixed_small), (steps_tiny, fixed_tiny) = errors(1e-2), errors(1e-3)
    assert steps_tiny < steps_small / 50  # second order: error / 100 for scale / 10
    assert fixed_small / fixed_tiny < 20  # first order: the limit's precision is off
    assert steps_tiny < fixed_tiny / 100
    torch.testing.assert_close(step_precisions(torch.tensor(0.0), torch.tensor(0.1), 4),
                               torch.tensor(2.5))  # 1 / (K alpha) without a pull
    torch.testing.assert_close(step_precisions(pull, torch.tensor(0.1), 400),
                               fixed_point_precisions(pull, torch.tensor(0.1)))


# --- the implicit gradient -------------------------------------------------------------------
PRECISIONS = {"fixed-point": fixed_point_precisions,
              "steps": lambda pull, lr: step_precisions(pull, lr, 3)}


@pytest.mark.parametrize("enhancement, precision_name", [
    ("gradient", "fixed-point"), ("proximal", "fixed-point"), ("gradient", "steps")])
def test_implicit_gradient_and_learned_prior_gradient_match_finite_differences(
    enhancement, precision_name
):
    """On a quadratic J with an outer objective F(theta) = c.theta - |theta - e|^2 / 2 at the
    proximal optimum: the theta_0 gradient M y and the per-group log-lambda gradient (chained
    through mu(lambda, alpha)) against central differences of F(theta*(theta_0, lambda))."""
    hessian, b = quadratic()
    g = torch.Generator().manual_seed(1)
    c, e = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(
        6, generator=g, dtype=torch.float64)
    theta_0 = torch.randn(6, generator=g, dtype=torch.float64)
    groups = torch.tensor([0, 0, 0, 1, 1, 2])  # three "parameter tensors"
    log_prior = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
    log_lr = torch.tensor([-2.0, -1.5, -2.3], dtype=torch.float64)

    precision = PRECISIONS[precision_name]

    def mu_of(log_prior):
        pull = pulls(log_prior.exp(), 0.1, enhancement)
        return precision(pull, log_lr.exp())[groups]

    def outer(theta_0, log_prior):
        theta = proximal_optimum(hessian, b, theta_0, mu_of(log_prior))
        return float(c @ theta - 0.5 * (theta - e) @ (theta - e))

    theta = proximal_optimum(hessian, b, theta_0, mu_of(log_prior))
    gradient = c - (theta - e)
    meta = implicit_solve(lambda v: hessian @ v, gradient, mu_of(log_prior), 6, 0.0)
    eps = 1e-6
    numeric = torch.tensor([
        (outer(theta_0 + eps * d, log_prior) - outer(theta_0 - eps * d, log_prior)) / (2 * eps)
        for d in torch.eye(6, dtype=torch.float64)], dtype=torch.float64)
    torch.testing.assert_close(meta, numeric, rtol=1e-5, atol=1e-7)

    log_mu_gradient = torch.zeros(3, dtype=torch.float64).index_add_(
        0, groups, -meta * (theta - theta_0))  # dF/d log mu per group
    leaf = log_prior.clone().requires_grad_()
    log_mu = precision(pulls(leaf.exp(), 0.1, enhancement), log_lr.exp()).log()
    (prior_gradient,) = torch.autograd.grad(log_mu, leaf, log_mu_gradient)
    numeric = torch.tensor([
        (outer(theta_0, log_prior + eps * d) - outer(theta_0, log_prior - eps * d)) / (2 * eps)
        for d in torch.eye(3, dtype=torch.float64)], dtype=torch.float64)
    torch.testing.assert_close(prior_gradient, numeric, rtol=1e-5, atol=1e-7)
    assert prior_gradient.abs().max() > 1e-2  # the check has something to check


def test_implicit_gradient_on_a_policy_matches_a_dense_solve():
    """The learner's batched CG solve against (M(1 + damping) - H_t)^-1 g_t solved densely per
    task, H_t the Hessian of the LVC surrogate built entry by entry."""
    config = TrainConfig(family="navigation2d", algo="meml", seed=1, meta_batch_size=2,
                         episodes_per_task=5, inner_steps=1, hidden_sizes=(3,),
                         algo_options={"implicit_cg_iters": 60, "implicit_damping": 0.5,
                                       "prior_lambda": 5.0, "hessian_episodes": "inner"})
    learner = build_learner(config, torch.device("cpu"))
    batch = learner.sample(tasks(learner, 2), learner.meta_params())
    after_batch = learner.sample(tasks(learner, 2), learner.meta_params())
    params = learner.adapt_params(learner.meta_params(), batch)
    inner, after = learner.with_advantages(batch), learner.with_advantages(after_batch)
    meta, gradient = learner.implicit_gradient(params, [(1.0, params, inner)], after)

    phi = {key: value.clone().requires_grad_() for key, value in params.items()}
    leaves = list(phi.values())
    graph = inner_gradient(learner.policy, phi, batch, inner.advantages, True)
    size = sum(leaf.numel() for leaf in leaves)
    columns = [flat(torch.autograd.grad(graph, leaves, unflat(unit, leaves), retain_graph=True))
               for unit in torch.eye(size)]
    hessian = torch.stack(columns, dim=1).double()
    mu = learner.precision(learner.log_prior, learner.log_inner_lr).detach()
    precision = flat([m.expand_as(leaf) for m, leaf in zip(mu, leaves)]).double()
    system = torch.diag(precision * 1.5) - hessian  # block diagonal over the two tasks
    expected = precision * torch.linalg.solve(system, gradient.double())
    torch.testing.assert_close(meta.double(), expected, rtol=1e-3, atol=1e-5)
    assert float((meta - gradient).norm()) > 1e-3 * float(gradient.norm())  # H matters


def test_no_second_order_graph_through_the_inner_steps(monkeypatch):
    """The inner steps never build a graph; the outer update builds one Hessian graph at
    theta_t, whatever the number of inner steps; theta_t is no function of the live theta_0."""
    grad = torch.autograd.grad

    def graphs_built(steps):
        learner = make(inner_steps=steps)
        calls = []

        def recording_grad(*args, **kwargs):
            calls.append(bool(kwargs.get("create_graph", False)))
            return grad(*args, **kwargs)

        monkeypatch.setattr(torch.autograd, "grad", recording_grad)
        rollouts = learner.collect(tasks(learner), learner_timer())
        assert not any(calls) and len(calls) == steps
        assert not any(value.requires_grad for value in rollouts.adapted.values())
        learner.outer_update(rollouts, learner_timer())
        monkeypatch.setattr(torch.autograd, "grad", grad)
        return sum(calls)

    assert graphs_built(1) == graphs_built(4) == 1


def learner_timer():
    from metarl.learn.learner import Timer

    return Timer(("sampling", "inner", "outer"))


def test_meta_learned_enhancement_moves_and_survives_a_checkpoint():
    learner = make()
    prior, lr = learner.log_prior.detach().clone(), learner.log_inner_lr.detach().clone()
    metrics = learner.step(tasks(learner))
    assert all(np.isfinite(value) for value in metrics.values())
    assert not torch.equal(learner.log_prior.detach(), prior)
    assert not torch.equal(learner.log_inner_lr.detach(), lr)
    fresh = make()
    fresh.load_state_dict(learner.state_dict())
    torch.testing.assert_close(fresh.log_prior, learner.log_prior)
    torch.testing.assert_close(fresh.log_inner_lr, learner.log_inner_lr)
    batch = learner.sample(tasks(learner), learner.meta_params())
    torch.testing.assert_close(fresh.adapt_params(fresh.meta_params(), batch),
                               learner.adapt_params(learner.meta_params(), batch))


def test_trust_region_meta_optimizer_steps_inside_the_kl_bound():
    learner = make(meta_optimizer="trpo", max_kl=0.005)
    metrics = learner.step(tasks(learner))
    assert metrics["step_accepted"] == 1.0 and 0 < metrics["kl"] <= 0.005


# --- the article's outer update ----------------------------------------------------------------
def test_reptile_update_is_mean_displacement_toward_enhanced_task_params():
    options = {"meta_update": "reptile", "learn_prior": False, "learn_inner_lr": False,
               "prior_lambda": 2.0, "enhance_lr": 0.2, "meta_lr": 0.3}
    learner, replica = make(**options), make(**options)
    theta_0 = {key: value.clone() for key, value in learner.meta_params().items()}
    task_params = adapted(replica, 2)  # same seeds, same episodes as the step below
    metrics = learner.step(tasks(learner))
    for key, value in learner.meta_params().items():
        expected = theta_0[key] + 0.3 * 2.0 * (task_params[key] - theta_0[key]).mean(dim=0)
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
    assert metrics["displacement"] > 0 and metrics["meta_step_norm"] > 0


# --- bad options -------------------------------------------------------------------------------
@pytest.mark.parametrize("options, message", [
    ({"prior_lambda": 50.0, "enhance_lr": 0.1}, "--enhance-lr \\* --prior-lambda = 5 >= 1"),
    ({"prior_lambda": 10.0, "enhance_lr": 0.1}, "overshoot theta_0; lower them or use "
                                                "--enhancement proximal"),
    ({"prior_lambda": 0.0}, "--prior-lambda must be > 0"),
    ({"enhance_lr": -1.0}, "--enhance-lr must be > 0"),
    ({"meta_lr": 0.0}, "--meta-lr must be > 0"),
    ({"hyper_lr": 0.0}, "--hyper-lr must be > 0"),
    ({"implicit_cg_iters": -1}, "--implicit-cg-iters must be >= 0"),
    ({"meta_update": "reptile"}, "add --no-learn-prior --no-learn-inner-lr"),
    ({"meta_optimizer": "sgd"}, "--meta-optimizer must be one of"),
])
def test_bad_options_are_rejected_with_the_option_named(options, message):
    with pytest.raises(ConfigError, match=message) as error:
        make(**options)
    assert "\n" not in str(error.value)


# --- learning ----------------------------------------------------------------------------------
def test_meml_adapts_over_several_steps_on_held_out_navigation_tasks():
    """A short run (20 iterations, 10 tasks x 10 episodes, 3 inner steps; about 12 s): on 20
    held-out tasks the return after 3 steps beats the return before by a wide margin, with
    intervals apart, and each step helps."""
    torch.set_num_threads(1)
    config = TrainConfig(family="navigation2d", algo="meml", seed=0, meta_batch_size=10,
                         episodes_per_task=10, inner_steps=3)
    learner = build_learner(config, torch.device("cpu"))
    for _ in range(20):
        learner.step(learner.family.sample_tasks(config.meta_batch_size, learner.rng))
    test = get_family("navigation2d").test_tasks(20, seed=0)
    result = evaluate(learner, test, adapt_steps=3, episodes=10, seed=0)
    returns = result.mean_return
    assert returns[3] > returns[0] + 10.0, returns
    assert returns[0] < returns[1] < returns[2] < returns[3], returns
    assert result.ci95_low[3] > result.ci95_high[0], result


# family -> (meta-iterations, meta-batch size, episodes per task, inner step size, options):
# test_learning.py's budgets with 3 inner steps and MEML's own initial inner step sizes
# (meta-learned from there); catch takes the trust-region outer step (docs/meml.md).
BUDGETS = {
    "navigation2d": (20, 10, 10, 0.1, {}),
    "bandit-5": (40, 20, 20, 1.0, {}),
    "bandit-10": (40, 20, 20, 1.0, {}),
    "tabular-mdp": (60, 20, 20, 2.0, {}),
    "cartpole-tasks": (40, 20, 20, 1.0, {}),
    "maze": (60, 20, 20, 1.0, {}),
    "catch": (60, 20, 20, 0.5, {"meta_optimizer": "trpo"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", list(BUDGETS))
def test_meml_adapts_on_every_family(family, tmp_path):
    """On 40 held-out tasks the return after the 3 inner steps is above the return before,
    with non-overlapping 95% intervals."""
    from metarl.run.training import train

    iterations, n_tasks, episodes, inner_lr, options = BUDGETS[family]
    config = TrainConfig(family=family, algo="meml", iterations=iterations,
                         meta_batch_size=n_tasks, episodes_per_task=episodes, inner_lr=inner_lr,
                         inner_steps=3, seed=0, device="cpu", algo_options=options)
    learner = train(config, tmp_path / family, log=None)
    result = evaluate(learner, learner.family.test_tasks(40, seed=0), adapt_steps=3,
                      episodes=episodes, seed=0)
    assert result.ci95_low[3] > result.ci95_high[0], result.mean_return
