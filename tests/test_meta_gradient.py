"""The meta-gradient through the inner step matches the exact one on a one-step bandit.

Problem: three arms with fixed rewards, a Categorical MLP policy, horizon 1. The exact return
is J(theta) = sum_a pi_theta(a) r_a, so the exact MAML objective F(theta) = J(theta + alpha *
grad J(theta)) and its gradient follow by autograd. The library's estimate replaces grad J by
the LVC surrogate on sampled episodes; to make its expectation exact, the batch holds every arm
in proportion to its probability (stratified). Its Hessian must then include the score outer
products that plain REINFORCE drops, which the last test shows matter.
"""

import torch

from metarl.learn.surrogates import episode_mean, log_probs, policy_gradient_step
from metarl.policies.mlp import CategoricalMLPPolicy
from metarl.rollout.episodes import EpisodeBatch

REWARDS = torch.tensor([1.0, -0.5, 0.3])
ALPHA = 1.0
N = 60_000


def exact_return(policy, params):
    obs = torch.ones(1, 1)
    if params["layers.0.weight"].dim() == 3:
        obs = obs.unsqueeze(0)
    return (policy.distribution(obs, params).probs * REWARDS).sum()


def stratified_batch(policy, params):
    probs = policy.distribution(torch.ones(1, 1), params).probs.detach()[0]
    counts = torch.round(probs * N).long()
    actions = torch.repeat_interleave(torch.arange(3), counts)
    n = actions.numel()
    return EpisodeBatch(
        observations=torch.ones(1, n, 1),
        actions=actions[None, :],
        rewards=REWARDS[actions][None, :],
        mask=torch.ones(1, n),
        task_index=torch.zeros(n, dtype=torch.long),
        n_tasks=1,
        episodes_per_task=n,
    )


def make_policy():
    torch.manual_seed(3)
    return CategoricalMLPPolicy(1, 3, hidden_sizes=(8,), activation="tanh")


def exact_meta_gradient(policy):
    params = policy.parameters_dict()
    inner = torch.autograd.grad(exact_return(policy, params), list(params.values()),
                                create_graph=True)
    adapted = {k: v + ALPHA * g for (k, v), g in zip(params.items(), inner)}
    return torch.autograd.grad(exact_return(policy, adapted), list(params.values()))


def library_meta_gradient(policy):
    params = policy.parameters_dict()
    batch = stratified_batch(policy, params)
    baseline = exact_return(policy, params).detach()
    advantages = batch.rewards - baseline
    adapted = policy_gradient_step(policy, params, batch, advantages, ALPHA, create_graph=True)
    return torch.autograd.grad(exact_return(policy, adapted), list(params.values()))


def reinforce_meta_gradient(policy):
    """The same step from a plain REINFORCE loss (log pi * A): its Hessian lacks the score terms."""
    params = policy.parameters_dict()
    batch = stratified_batch(policy, params)
    advantages = batch.rewards - exact_return(policy, params).detach()
    expanded = {k: v.expand(1, *v.shape) for k, v in params.items()}
    objective = episode_mean(log_probs(policy, expanded, batch) * advantages, batch).sum()
    grads = torch.autograd.grad(objective, list(expanded.values()), create_graph=True)
    adapted = {k: v + ALPHA * g for (k, v), g in zip(expanded.items(), grads)}
    return torch.autograd.grad(exact_return(policy, adapted), list(params.values()))


def relative_error(estimate, exact):
    e = torch.cat([x.reshape(-1) for x in estimate])
    x = torch.cat([x.reshape(-1) for x in exact])
    return float((e - x).norm() / x.norm())


def test_inner_step_is_the_policy_gradient():
    policy = make_policy()
    params = policy.parameters_dict()
    batch = stratified_batch(policy, params)
    advantages = batch.rewards - exact_return(policy, params).detach()
    adapted = policy_gradient_step(policy, params, batch, advantages, ALPHA, create_graph=False)
    exact = torch.autograd.grad(exact_return(policy, params), list(params.values()))
    for (key, value), grad in zip(params.items(), exact):
        torch.testing.assert_close(adapted[key][0], value + ALPHA * grad, atol=2e-4, rtol=1e-3)


def test_meta_gradient_matches_exact():
    policy = make_policy()
    assert relative_error(library_meta_gradient(policy), exact_meta_gradient(policy)) < 0.01


def test_dropping_the_sampling_terms_is_detectably_wrong():
    policy = make_policy()
    exact = exact_meta_gradient(policy)
    assert relative_error(reinforce_meta_gradient(policy), exact) > 0.05
