"""The batched env stepped in worker processes: exact agreement with SyncBatchedEnv (seeds,
terminated columns, flags, restarted columns), errors from workers, and workers that end
with their parent."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import metarl
from metarl.family.parallel import ParallelBatchedEnv, WorkerError, WorkerPool
from metarl.family.vector import SyncBatchedEnv


class Flagging:
    """A family's env with a success flag in its info: reward above zero."""

    def __init__(self, env):
        self.env = env

    def __getattr__(self, name):
        return getattr(self.env, name)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, "success": reward > 0.5}


def make(name: str, task, flag: bool = False):
    env = metarl.get_family(name).make_env(task)
    return Flagging(env) if flag else env


def factories(name: str, n_tasks: int, episodes: int, flag: bool = False):
    tasks = metarl.get_family(name).test_tasks(n_tasks)
    return [functools.partial(make, name, task, flag) for task in tasks
            for _ in range(episodes)]


@pytest.mark.parametrize("workers", [2, 3])
def test_agrees_with_sync_batched_env_terminations_included(workers: int) -> None:
    """cartpole-tasks' episodes end early: ended columns stay ended in both, and every
    output, flags included, is equal, over uneven shares."""
    columns = factories("cartpole-tasks", 4, 2, flag=True)[:7]
    sync = SyncBatchedEnv([make() for make in columns], flags=("success",))
    parallel = ParallelBatchedEnv(columns, workers=workers, flags=("success",))
    assert parallel.num_envs == 7
    assert parallel.single_action_space == sync.single_action_space
    np.testing.assert_array_equal(sync.reset(seed=4)[0], parallel.reset(seed=4)[0])
    rng = np.random.default_rng(0)
    ended = np.zeros(7, dtype=bool)
    for _ in range(150):
        actions = rng.integers(2, size=7)
        a, b = sync.step(actions), parallel.step(actions)
        for x, y in zip(a[:4], b[:4]):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(a[4]["success"], b[4]["success"])
        assert b[4]["success"].dtype == np.bool_
        ended = b[2]
    assert ended.any()  # some episodes ended, and stayed so
    # restarting the ended columns (as the trial stepper does) agrees too
    np.testing.assert_array_equal(sync.reset_columns(ended), parallel.reset_columns(ended))
    for _ in range(20):
        actions = rng.integers(2, size=7)
        a, b = sync.step(actions), parallel.step(actions)
        for x, y in zip(a[:4], b[:4]):
            np.testing.assert_array_equal(x, y)
    sync.close()
    parallel.close()


def test_workers_report_errors_and_stay_usable() -> None:
    env = ParallelBatchedEnv(factories("navigation2d", 2, 1), workers=2)
    env.reset(seed=0)
    with pytest.raises(WorkerError, match="worker"):
        env.step(np.full((2, 5), 0.1))  # wrong action shape
    obs, *_ = env.step(np.zeros((2, 2)))
    assert obs.shape == (2, 2)
    env.close()
    with pytest.raises(WorkerError, match="building the envs failed"):
        ParallelBatchedEnv([functools.partial(make, "navigation2d", {"goal": [9.0]})],
                           workers=2)


def test_an_own_pool_is_stopped_on_close() -> None:
    pool = WorkerPool(2)
    env = ParallelBatchedEnv(factories("navigation2d", 2, 2), pool=pool, own_pool=True)
    env.reset(seed=0)
    env.close()
    assert pool.broken and not pool._processes


def test_workers_end_when_their_parent_dies(tmp_path) -> None:
    """A parent killed without its exit handlers leaves no worker behind."""
    script = (
        "import functools, os, metarl\n"
        "from metarl.family.parallel import ParallelBatchedEnv\n"
        "family = metarl.get_family('navigation2d')\n"
        "env = ParallelBatchedEnv([functools.partial(family.make_env, t)\n"
        "                          for t in family.test_tasks(4)], workers=2)\n"
        "print(' '.join(str(p.pid) for p in env.pool._processes), flush=True)\n"
        "os._exit(0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    pids = [int(pid) for pid in done.stdout.split()]
    assert len(pids) == 2, done.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        return os.path.exists(f"/proc/{pid}")
