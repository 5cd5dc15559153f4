"""The Ray backend: same episodes as the local sampler, same training, recovery, sweeps."""

import csv
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

from metarl.config import ConfigError, TrainConfig  # noqa: E402
from metarl.policies.mlp import make_policy  # noqa: E402
from metarl.registry import get_family  # noqa: E402
from metarl.rollout.episodes import EpisodeBatch  # noqa: E402
from metarl.rollout.ray_sampler import RaySampler, WorkerFailure, task_slices  # noqa: E402
from metarl.rollout.sampler import Sampler  # noqa: E402
from metarl.run.training import train  # noqa: E402
from metarl.tools.sweep import load_sweep, sweep  # noqa: E402

N_TASKS = 5
EPISODES = 3


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def _samplers(name: str, seed: int = 3) -> tuple[Sampler, RaySampler, dict, list]:
    family = get_family(name)
    env = family.make_env()
    torch.manual_seed(0)
    policy = make_policy(env.observation_space, env.action_space, (16, 16))
    local = Sampler(family, policy, torch.device("cpu"))
    remote = RaySampler(family, policy, torch.device("cpu"), num_workers=2)
    local.generator.manual_seed(seed)
    remote.generator.manual_seed(seed)
    params = {key: value.detach() for key, value in policy.parameters_dict().items()}
    return local, remote, params, family.sample_tasks(N_TASKS, np.random.default_rng(0))


def assert_same_episodes(local: EpisodeBatch, remote: EpisodeBatch) -> None:
    """Equal bit for bit on every step that happened (after termination the local sampler
    keeps stepping the batch while a finished slice stops, so masked entries may differ)."""
    assert torch.equal(local.mask, remote.mask)
    assert torch.equal(local.rewards, remote.rewards)
    assert torch.equal(local.task_index, remote.task_index)
    assert (local.n_tasks, local.episodes_per_task) == (remote.n_tasks, remote.episodes_per_task)
    valid = local.mask.bool()
    assert torch.equal(local.observations[valid], remote.observations[valid])
    assert torch.equal(local.actions[valid], remote.actions[valid])


def test_task_slices_are_contiguous_and_fixed() -> None:
    assert task_slices(5, 2) == [range(0, 2), range(2, 5)]
    assert task_slices(1, 3) == [range(0, 1)]
    for n, k in ((20, 3), (7, 7), (4, 2)):
        slices = task_slices(n, k)
        assert [i for s in slices for i in s] == list(range(n))
        assert max(map(len, slices)) - min(map(len, slices)) <= 1


@pytest.mark.parametrize("name", ["navigation2d", "cartpole-tasks", "maze"])
def test_ray_batch_equals_local(name: str) -> None:
    local, remote, params, tasks = _samplers(name)
    per_task = {key: value + 0.05 * torch.randn(N_TASKS, *value.shape,
                                                generator=torch.Generator().manual_seed(1))
                for key, value in params.items()}
    for p in (params, per_task, params):
        assert_same_episodes(local.sample(tasks, EPISODES, p, 11),
                             remote.sample(tasks, EPISODES, p, 11))


def test_killed_actor_is_restarted_and_its_slice_resampled() -> None:
    local, remote, params, tasks = _samplers("navigation2d")
    assert_same_episodes(local.sample(tasks, EPISODES, params, 0),
                         remote.sample(tasks, EPISODES, params, 0))
    ray.kill(remote.workers[1], no_restart=False)
    assert_same_episodes(local.sample(tasks, EPISODES, params, 1),
                         remote.sample(tasks, EPISODES, params, 1))


def test_dead_actor_gives_a_clear_error() -> None:
    _, remote, params, tasks = _samplers("navigation2d")
    ray.kill(remote.workers[0], no_restart=True)
    began = time.perf_counter()
    with pytest.raises(WorkerFailure, match="sampler worker 0 .*failed 4 times"):
        remote.sample(tasks, EPISODES, params, 0)
    assert time.perf_counter() - began < 30


def test_more_workers_than_cpus_is_a_config_error() -> None:
    local, _, _, _ = _samplers("navigation2d")
    with pytest.raises(ConfigError, match="--num-workers 3 needs 3 CPUs"):
        RaySampler(local.family, local.policy, torch.device("cpu"), num_workers=3)


def _metrics(run_dir) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if not k.endswith("_seconds")}
                for row in csv.DictReader(handle)]


def test_training_on_ray_matches_local(tmp_path) -> None:
    settings = dict(family="navigation2d", iterations=2, meta_batch_size=3, episodes_per_task=4,
                    hidden_sizes=(16,), seed=5)
    train(TrainConfig(**settings), tmp_path / "local", log=None)
    train(TrainConfig(**settings, backend="ray", num_workers=2), tmp_path / "ray", log=None)
    local, remote = _metrics(tmp_path / "local"), _metrics(tmp_path / "ray")
    assert len(local) == 2
    assert local == remote


SWEEP = {
    "base": {"family": "bandit-5", "iterations": 2, "meta_batch_size": 3,
             "episodes_per_task": 3, "hidden_sizes": [16]},
    "grid": {"inner_lr": [0.05, 0.1]},
    "seeds": [0, 1],
    "evaluate": {"test_tasks": 4, "adapt_steps": 1, "episodes": 3},
}


def test_sweep_writes_run_directories_and_summary(tmp_path) -> None:
    summary = sweep(SWEEP, tmp_path)
    assert not summary["failed"]
    labels = [entry["label"] for entry in summary["configurations"]]
    assert labels == ["inner_lr=0.05", "inner_lr=0.1"]
    for entry in summary["configurations"]:
        assert entry["seeds"] == [0, 1]
        after = entry["return_after"]
        assert len(after["per_seed"]) == 2
        assert after["ci95_low"] <= after["mean"] <= after["ci95_high"]
        for run_dir in entry["run_dirs"]:
            evaluation = json.loads((Path(run_dir) / "evaluation.json").read_text())
            assert evaluation["mean_return"][-1] in after["per_seed"]
            assert (Path(run_dir) / "checkpoint.pt").exists()
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    table = (tmp_path / "summary.md").read_text()
    assert "| inner_lr=0.05 | 0,1 |" in table and "return after 1 step" in table


@pytest.mark.parametrize("change, message", [
    ({"grid": {"inner_lr": []}}, "grid key 'inner_lr' must map to a non-empty list"),
    ({"grid": {"learning_rate": [0.1]}}, "grid key 'learning_rate' is not a training option"),
    ({"seeds": []}, "'seeds' must be a non-empty list"),
    ({"seeds": [0, 0]}, "distinct"),
    ({"base": {"family": "nope"}}, "unknown task family 'nope'"),
    ({"base": {"seed": 1}}, "may not set 'seed'"),
    ({"base": {"meta_batch_size": 0}}, "--meta-batch-size must be >= 1"),
    ({"evaluate": {"episodes": 0}}, "--episodes must be >= 1"),
    ({"evaluate": {"split": "ood"}, "base": {"family": "tabular-mdp"}}, "has no split 'ood'"),
    ({"base": {"backend": "ray"}}, "sweep trials sample locally"),
    ({"trials": 3}, "unknown sweep key"),
])
def test_bad_sweep_files_are_config_errors(tmp_path, change, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_sweep({**SWEEP, **change}, tmp_path)
