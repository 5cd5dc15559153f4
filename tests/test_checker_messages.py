"""The checker on the mistakes a family author makes: each gives one line naming the function,
what was expected (shape, dtype) and the fix; errors from the family's own code say where."""

from __future__ import annotations

import numpy as np
import pytest

from metarl.cli import main
from metarl.envs.navigation2d import Navigation2D, Navigation2DEnv
from metarl.family.checker import check_family, run_checks

THIS_FILE = "test_checker_messages.py"


class RewardColumn(Navigation2D):
    def transition(self, state, action, params, rng):
        state, reward, terminated = super().transition(state, action, params, rng)
        return state, reward[:, None], terminated


class FloatTerminated(Navigation2D):
    def transition(self, state, action, params, rng):
        state, reward, terminated = super().transition(state, action, params, rng)
        return state, reward, terminated.astype(float)


class TerminatedColumn(Navigation2D):
    def transition(self, state, action, params, rng):
        state, reward, terminated = super().transition(state, action, params, rng)
        return state, reward, terminated[:, None]


class StateWithoutBatch(Navigation2D):
    def initial_state(self, params, rng):
        return {"position": np.zeros((1, 2))}


class ParamsWithoutBatch(Navigation2D):
    def task_params(self, tasks):
        return {"goal": np.array(tasks[0].goal)}


class ObservationWrongShape(Navigation2D):
    def observe(self, state, params):
        return state["position"][:, :1]


class ObservationNotNumbers(Navigation2D):
    def observe(self, state, params):
        return np.array([["x", "y"]] * len(state["position"]))


class GlobalRandomness(Navigation2D):
    def initial_state(self, params, rng):
        return {"position": np.random.normal(size=(rng.batch_size, 2)) * 0.01}


class RaisingDynamics(Navigation2D):
    def transition(self, state, action, params, rng):
        raise ValueError("my dynamics are broken")


class OodListedNotImplemented(Navigation2D):
    sample_ood_tasks = Navigation2D.__mro__[1].sample_ood_tasks  # the base's, not implemented


class OodImplementedNotListed(Navigation2D):
    splits = ("test",)


class BrokenDrawEnv(Navigation2DEnv):
    def draw(self, canvas):
        raise RuntimeError("my drawing is broken")


class BrokenDraw(Navigation2D):
    env_class = BrokenDrawEnv


CASES = [
    (RewardColumn, "transition(...) must return reward as numbers of shape [B] = (6,), got "
                   "float64 (6, 1)"),
    (FloatTerminated, "must return terminated as a bool array of shape [B] = (6,), got "
                      "float64 (6,)"),
    (TerminatedColumn, "must return terminated as a bool array of shape [B] = (6,), got bool "
                       "(6, 1)"),
    (StateWithoutBatch, "initial_state(params, rng) must return arrays with leading dimension "
                        "rng.batch_size = 6; 'position' is ndarray of shape (1, 2)"),
    (ParamsWithoutBatch, "task_params(tasks) must return arrays with leading dimension "
                         "len(tasks) = 3; 'goal' is ndarray of shape (2,)"),
    (ObservationWrongShape, "observe(state, params) must return [B, *observation shape] = "
                            "(6, 2), got (6, 1)"),
    (ObservationNotNumbers, "observe(state, params) must return numbers castable to float32"),
    (GlobalRandomness, "draws from numpy's global random numbers (np.random.*): draw only "
                       "from the BatchRNG"),
    (RaisingDynamics, "transition(state, action, params, rng) raised ValueError: my dynamics "
                      f"are broken (*{THIS_FILE}:"),
    (OodListedNotImplemented, "splits lists 'ood' but the family has no sample_ood_tasks"),
    (OodImplementedNotListed, "sample_ood_tasks(n, rng) is implemented but splits does not "
                              "list 'ood'"),
    (BrokenDraw, f"raised RuntimeError: my drawing is broken (*{THIS_FILE}:"),
]


@pytest.mark.parametrize(("family_class", "message"), CASES, ids=[c[0].__name__ for c in CASES])
def test_each_mistake_gets_one_line_naming_function_expectation_and_fix(family_class, message):
    problems = check_family(family_class())
    assert problems, family_class
    assert any(all(part in problem for part in message.split("*")) for problem in problems), \
        problems  # "*" stands for the folder of a file:line
    assert all("\n" not in problem for problem in problems)


def test_verbose_check_lists_every_check(capsys):
    assert main(["check", "navigation2d", "-v"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [result.name for result in run_checks(Navigation2D())]
    assert [line.split()[1] for line in lines[:-1]] == names
    assert all(line.split()[0] == "ok" for line in lines[:-1])


def test_verbose_check_shows_failures_and_skips(tmp_path, capsys):
    module = tmp_path / "my_family.py"
    module.write_text(
        "import numpy as np\n"
        "from metarl.envs.navigation2d import Navigation2D\n"
        "class Broken(Navigation2D):\n"
        "    name = 'broken-nav'\n"
        "    env_id = 'metarl/BrokenNav-v0'\n"
        "    def task_params(self, tasks):\n"
        "        return {'goal': np.zeros(2)}\n"
    )
    assert main(["check", f"{module}:Broken", "-v"]) == 1
    out = capsys.readouterr().out
    assert "FAIL    arrays" in out and "skipped randomness" in out
    assert "FAIL task_params(tasks) must return arrays with leading dimension" in out
