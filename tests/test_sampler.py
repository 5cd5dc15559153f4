"""Batched sampling: shapes, masks, per-task parameters, reproducibility."""

import numpy as np
import pytest
import torch

import metarl
from metarl.learn.surrogates import log_probs
from metarl.policies.mlp import make_policy
from metarl.policies.params import per_task
from metarl.rollout.sampler import Sampler


def make_sampler(name="navigation2d", seed=0):
    family = metarl.get_family(name)
    env = family.make_env()
    torch.manual_seed(seed)
    policy = make_policy(env.observation_space, env.action_space, (16,), "tanh")
    sampler = Sampler(family, policy, torch.device("cpu"))
    sampler.generator.manual_seed(seed)
    return family, policy, sampler


@pytest.mark.parametrize("name", ["navigation2d", "catch"])
def test_shapes_and_mask(name):
    family, policy, sampler = make_sampler(name)
    tasks = family.sample_tasks(3, np.random.default_rng(0))
    batch = sampler.sample(tasks, 4, policy.parameters_dict(), seed=1)
    t, b = family.max_episode_steps, 12
    assert batch.observations.shape[:2] == (t, b)
    assert batch.rewards.shape == (t, b) and batch.mask.shape == (t, b)
    assert batch.actions.shape[:2] == (t, b)
    assert batch.task_index.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # the mask is 1 then 0 (no holes) and padded rewards are 0
    assert (batch.mask[1:] <= batch.mask[:-1]).all()
    assert (batch.rewards[batch.mask == 0] == 0).all()


def test_mask_ends_at_termination():
    family, policy, sampler = make_sampler()
    goal_at_first_step = [{"goal": [0.0, 0.0]}]
    tasks = [family.coerce_task(t) for t in goal_at_first_step]
    params = {k: v.detach().clone() for k, v in policy.parameters_dict().items()}
    # a policy that does not move: zero output layer and tiny std ends every episode at step 1
    params[f"layers.{len(policy.layers) - 1}.weight"].zero_()
    params[f"layers.{len(policy.layers) - 1}.bias"].zero_()
    params["log_std"].fill_(-20)
    batch = sampler.sample(tasks, 3, params, seed=0)
    assert batch.lengths.tolist() == [1.0, 1.0, 1.0]
    assert batch.mask[0].tolist() == [1.0, 1.0, 1.0]


def test_same_seed_same_episodes():
    family, policy, sampler = make_sampler()
    tasks = family.sample_tasks(2, np.random.default_rng(0))
    sampler.generator.manual_seed(5)
    a = sampler.sample(tasks, 3, policy.parameters_dict(), seed=9)
    sampler.generator.manual_seed(5)
    b = sampler.sample(tasks, 3, policy.parameters_dict(), seed=9)
    assert torch.equal(a.observations, b.observations) and torch.equal(a.rewards, b.rewards)


def test_per_task_params_act_like_each_task_alone():
    family, policy, sampler = make_sampler()
    tasks = family.sample_tasks(3, np.random.default_rng(0))
    shared = policy.parameters_dict()
    params = {k: v.detach().clone() for k, v in per_task(shared, 3).items()}
    params["log_std"] = torch.tensor([[-30.0, -30.0], [-30.0, -30.0], [-30.0, -30.0]])
    params["layers.1.bias"] = torch.tensor([[0.1, 0.0], [0.0, 0.1], [-0.1, -0.1]])
    batch = sampler.sample(tasks, 2, params, seed=0)
    for task in range(3):
        single = {k: v[task] for k, v in params.items()}
        obs = batch.observations[:, 2 * task : 2 * task + 2]
        expected = policy.distribution(obs, single).mean
        torch.testing.assert_close(batch.actions[:, 2 * task : 2 * task + 2], expected,
                                   atol=1e-5, rtol=1e-5)


def test_grouped_log_probs_match_shared_when_params_are_equal():
    family, policy, sampler = make_sampler()
    tasks = family.sample_tasks(2, np.random.default_rng(0))
    shared = policy.parameters_dict()
    batch = sampler.sample(tasks, 3, shared, seed=0)
    torch.testing.assert_close(log_probs(policy, shared, batch),
                               log_probs(policy, per_task(shared, 2), batch))


@pytest.mark.parametrize("algo", ["maml", "rl2"])
def test_init_std_sets_the_gaussian_policys_initial_spread(algo):
    from metarl.config import TrainConfig
    from metarl.run.factory import build_learner

    config = TrainConfig(family="navigation2d", algo=algo, init_std=0.3, meta_batch_size=4,
                         episodes_per_task=2, hidden_sizes=(8,), device="cpu")
    learner = build_learner(config)
    policy = learner.policy if algo == "maml" else learner.model.policy
    std = policy.log_std.detach().exp()
    torch.testing.assert_close(std, torch.full_like(std, 0.3))


def test_init_output_scale_shrinks_only_the_output_layer():
    from metarl.policies.mlp import GaussianMLPPolicy

    torch.manual_seed(0)
    plain = GaussianMLPPolicy(6, 2, (8, 8))
    torch.manual_seed(0)
    small = GaussianMLPPolicy(6, 2, (8, 8), output_scale=0.01)
    for i in range(2):
        assert torch.equal(plain.layers[i].weight, small.layers[i].weight)
    torch.testing.assert_close(small.layers[2].weight, 0.01 * plain.layers[2].weight)
    obs = torch.randn(50, 6)
    small_mean, plain_mean = small.distribution(obs).mean, plain.distribution(obs).mean
    assert small_mean.abs().max() < 0.05 * plain_mean.abs().max()
