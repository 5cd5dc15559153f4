"""Returns, GAE and the linear baseline against values worked out by hand."""

import torch

from metarl.learn.advantages import (
    advantages,
    discounted_returns,
    gae,
    linear_baseline,
    normalize_per_task,
)
from metarl.rollout.episodes import EpisodeBatch


def batch(rewards, mask, observations=None, n_tasks=1):
    rewards = torch.tensor(rewards, dtype=torch.float32)
    mask = torch.tensor(mask, dtype=torch.float32)
    t, b = rewards.shape
    obs = torch.zeros(t, b, 1) if observations is None else observations
    task_index = torch.arange(n_tasks).repeat_interleave(b // n_tasks)
    return EpisodeBatch(obs, torch.zeros(t, b, 1), rewards * mask, mask, task_index, n_tasks,
                        b // n_tasks)


def test_discounted_returns_by_hand():
    rewards = torch.tensor([[1.0, 2.0], [0.0, 3.0], [2.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    returns = discounted_returns(rewards * mask, mask, gamma=0.5)
    # column 0: G2 = 2, G1 = 0 + 0.5*2 = 1, G0 = 1 + 0.5*1 = 1.5
    # column 1 ends after step 1: G1 = 3, G0 = 2 + 1.5 = 3.5, padded step 0
    expected = torch.tensor([[1.5, 3.5], [1.0, 3.0], [2.0, 0.0]])
    torch.testing.assert_close(returns, expected)


def test_gae_by_hand():
    rewards = torch.tensor([[1.0], [1.0], [1.0]])
    values = torch.tensor([[0.5], [0.25], [2.0]])
    mask = torch.ones(3, 1)
    gamma, lam = 0.9, 0.5
    d2 = 1.0 - 2.0  # last step: no bootstrap
    d1 = 1.0 + 0.9 * 2.0 - 0.25
    d0 = 1.0 + 0.9 * 0.25 - 0.5
    a2 = d2
    a1 = d1 + 0.45 * a2
    a0 = d0 + 0.45 * a1
    torch.testing.assert_close(gae(rewards, values, mask, gamma, lam),
                               torch.tensor([[a0], [a1], [a2]]))


def test_gae_lambda_one_is_returns_minus_values():
    torch.manual_seed(0)
    rewards, values = torch.randn(6, 4), torch.randn(6, 4)
    mask = torch.ones(6, 4)
    mask[4:, 1] = 0
    expected = (discounted_returns(rewards * mask, mask, 0.99) - values * mask) * mask
    torch.testing.assert_close(gae(rewards * mask, values, mask, 0.99, 1.0), expected,
                               atol=1e-5, rtol=1e-5)


def test_padded_episodes_stay_finite():
    episodes = batch([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]], [[1, 1], [0, 0], [0, 0]])
    result = advantages(episodes, gamma=0.99, gae_lambda=1.0)
    assert torch.isfinite(result).all()
    assert (result[1:] == 0).all()


def test_linear_baseline_fits_returns_linear_in_features():
    # Returns equal to 2 * obs + 1 lie in the feature span, so the fit is exact per task.
    obs = torch.linspace(-1, 1, 8).reshape(4, 2, 1)
    mask = torch.ones(4, 2)
    episodes = batch(torch.zeros(4, 2).tolist(), mask.tolist(), observations=obs)
    values = linear_baseline(episodes, 2 * obs[..., 0] + 1)
    torch.testing.assert_close(values, 2 * obs[..., 0] + 1, atol=1e-3, rtol=1e-3)


def test_normalize_per_task_gives_zero_mean_unit_std_on_valid_steps():
    torch.manual_seed(1)
    x = torch.randn(5, 4) * 3 + 7
    mask = torch.ones(5, 4)
    mask[3:, 0] = 0
    episodes = batch(torch.zeros(5, 4).tolist(), mask.tolist(), n_tasks=2)
    out = normalize_per_task(x * mask, episodes)
    for task in range(2):
        cols = slice(2 * task, 2 * task + 2)
        valid = out[:, cols][mask[:, cols] > 0]
        assert abs(float(valid.mean())) < 1e-5
        assert abs(float(valid.std(unbiased=False)) - 1) < 1e-4
    assert (out[mask == 0] == 0).all()
