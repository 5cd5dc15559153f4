"""Hostile and unlucky runs that need a setup of their own: links where a run writes, family
files named like the modules metarl uses, commands killed at awkward moments, broken and
greedy plugins, a checkpoint from another run, tampered logs, family code that fails, and the
Python API given what the command line refuses. Each ends in one clean line (exit status 2 on
the command line, a ConfigError from Python), and nothing is written where it must not be."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_runs import TINY, copy_run

import metarl
from metarl.cli import main
from metarl.config import ConfigError, TrainConfig
from metarl.family.base import held_out_tasks
from metarl.run.evaluation import evaluate
from metarl.run.rundir import strict_json, write_json
from metarl.run.training import train

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "docs" / "family_template.py"


def refused(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> str:
    """Run ``argv``; it must end with exit status 2 and one error line holding ``message``."""
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0], error
    return error[0]


# --- links where a run writes ---------------------------------------------------------------
def test_a_lock_that_is_a_link_is_never_written_through(good_run, tmp_path, capsys):
    run, target = copy_run(good_run, tmp_path), tmp_path / "elsewhere"
    target.write_text("precious")
    (run / ".lock").unlink()
    (run / ".lock").symlink_to(target)
    refused(["train", "--out", str(run), "--resume", "--iterations", "2"],
            ".lock' is a symbolic link; metarl will not write through it", capsys)
    assert target.read_text() == "precious"
    (run / ".lock").unlink()
    (run / ".lock").symlink_to(tmp_path / "missing")
    refused(["train", "--out", str(run), "--resume", "--iterations", "2"],
            "is a symbolic link", capsys)
    assert not (tmp_path / "missing").exists()


def test_a_tensorboard_folder_that_is_a_link_is_refused(good_run, tmp_path, capsys):
    pytest.importorskip("tensorboard")
    run, outside = copy_run(good_run, tmp_path), tmp_path / "outside"
    outside.mkdir()
    (run / "tensorboard").symlink_to(outside, target_is_directory=True)
    refused(["train", "--out", str(run), "--resume", "--iterations", "2", "--tensorboard"],
            "tensorboard' is not a folder of the run (a link or a file)", capsys)
    assert not list(outside.iterdir())


@pytest.mark.parametrize("name", ["json", "torch", "copy", "tempfile"])
def test_a_family_file_named_like_a_module_metarl_uses(name, tmp_path):
    """The file is imported under a name of its own: the module it is named after stays.
    (The ``metarl`` command; ``python -m`` puts the current folder first on the import path
    before any of metarl runs, as Python does for every ``-m`` module.)"""
    shutil.copy(TEMPLATE, tmp_path / f"{name}.py")
    command = Path(sys.executable).parent / "metarl"
    done = subprocess.run(
        [str(command), "train", "--family", f"{name}.py:LineTarget", "--iterations", "1",
         "--out", "run", *TINY], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["family"] == "line-target"


# --- commands killed at awkward moments -------------------------------------------------------
def test_a_run_killed_before_its_first_checkpoint_starts_afresh(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"family": "navigation2d"}')  # all a kill left
    assert main(["train", "--out", str(run), "--iterations", "1", *TINY]) == 0
    assert (run / "checkpoint.pt").exists()
    assert json.loads((run / "config.json").read_text())["meta_batch_size"] == 2


def test_a_killed_recording_leaves_nothing_behind_the_next_one(good_run, tmp_path):
    out = tmp_path / "rec"
    stale = out / ".recording.abc123"
    stale.mkdir(parents=True)
    (stale / "frame_0000.png").write_bytes(b"x" * 1000)
    assert main(["watch", str(good_run), "--record", str(out), "--frames", "2"]) == 0
    assert not stale.exists() and (out / "watch.gif").exists()


# --- a checkpoint from another run ---------------------------------------------------------------
def test_a_checkpoint_copied_from_another_run_is_not_resumed(good_run, tmp_path, capsys):
    mine, other = copy_run(good_run, tmp_path), tmp_path / "other"
    assert main(["train", "--out", str(other), "--iterations", "1", "--seed", "7", *TINY]) == 0
    shutil.copy(other / "checkpoint.pt", mine / "checkpoint.pt")
    before = (mine / "metrics.csv").read_text()
    refused(["train", "--out", str(mine), "--resume", "--iterations", "2"],
            "has seed=7 but the run's config.json has 0: it does not belong", capsys)
    assert (mine / "metrics.csv").read_text() == before


# --- tampered logs that are still readable --------------------------------------------------
def test_a_row_cut_short_and_a_whole_float_iteration_still_plot(good_run, tmp_path):
    run = copy_run(good_run, tmp_path)
    lines = (run / "metrics.csv").read_text().splitlines()
    header, row = lines[0], lines[1]
    cut = row[: len(row) // 2]
    (run / "metrics.csv").write_text("\n".join([header, "1.0" + row[1:], cut]) + "\n")
    assert main(["plot", str(run), "--out", str(tmp_path / "t.png")]) == 0
    assert [r["iteration"] for r in metarl.load(run).history] == [1.0]


# --- family code that fails ----------------------------------------------------------------------
FAILING = '''
import numpy as np
from metarl.envs.navigation2d import Navigation2D

class Failing(Navigation2D):
    name = "failing-navigation"
    env_id = "metarl/FailingNavigation-v0"

    def transition(self, state, action, params, rng):
        if np.abs(state["position"]).max() > 0.15:
            raise RuntimeError("the family's own bug")
        return super().transition(state, action, params, rng)
'''


def test_family_code_failing_in_training_is_one_line_with_its_file(tmp_path, capsys):
    (tmp_path / "failing.py").write_text(FAILING)
    error = refused(["train", "--family", f"{tmp_path / 'failing.py'}:Failing",
                     "--iterations", "2", "--out", str(tmp_path / "run"), *TINY],
                    "code outside metarl failed: RuntimeError: the family's own bug", capsys)
    assert error.endswith(f"({tmp_path / 'failing.py'}:11); fix it there"), error


def test_a_split_of_the_wrong_size_is_refused():
    family = metarl.get_family("navigation2d")

    class Short(type(family)):  # type: ignore[misc]
        def test_tasks(self, n, seed=0, split="test"):
            return super().test_tasks(n, seed, split)[:-1]

    with pytest.raises(ConfigError, match=r"test_tasks\(4, seed=0, split='test'\) returned 3 "
                                          "tasks; it must return exactly 4"):
        held_out_tasks(Short(), 4)
    with pytest.raises(ConfigError, match="number of test tasks must be a whole number"):
        family.test_tasks(-1)


# --- strict JSON ---------------------------------------------------------------------------------
def test_non_finite_numbers_are_written_as_null(tmp_path):
    data = {"mean_return": [1.0, math.nan, math.inf, -math.inf], "nested": {"x": math.nan}}
    assert json.loads(strict_json(data)) == {"mean_return": [1.0, None, None, None],
                                             "nested": {"x": None}}
    write_json(tmp_path / "r.json", data)

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-strict JSON constant {constant}")

    json.loads((tmp_path / "r.json").read_text(), parse_constant=refuse)


# --- plugins -------------------------------------------------------------------------------------
def plugin_env(root: Path, name: str, code: str) -> dict[str, str]:
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text(code)
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[metarl.plugins]\n{name} = {name}\n")
    return {**os.environ, "PYTHONPATH": str(root)}


@pytest.mark.parametrize(("code", "reason"), [
    ("import sys\nsys.exit(0)\n", "SystemExit at import"),
    ("raise KeyboardInterrupt\n", "KeyboardInterrupt at import"),
    ("from metarl.envs.navigation2d import Navigation2D\n"
     "from metarl import register_family\n"
     "class Impostor(Navigation2D):\n    env_id = 'metarl/Impostor-v0'\n"
     "register_family('navigation2d', Impostor)\n",
     "a task family named 'navigation2d' is already registered"),
])
def test_a_misbehaving_plugin_is_skipped_and_the_command_still_runs(code, reason, tmp_path):
    env = plugin_env(tmp_path, "greedy_plugin", code)
    done = subprocess.run([sys.executable, "-m", "metarl", "families"], env=env, text=True,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "navigation2d" in done.stdout and "Traceback" not in done.stderr
    assert "metarl plugin 'greedy_plugin'" in done.stderr and reason in done.stderr
    check = subprocess.run(
        [sys.executable, "-c", "import metarl; from metarl.envs.navigation2d import Navigation2D;"
         " assert type(metarl.get_family('navigation2d')) is Navigation2D"],
        env=env, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stderr


# --- the Python API refuses what the command line refuses ---------------------------------------
def test_plain_values_are_accepted_and_bad_ones_refused_before_any_file(tmp_path):
    config = TrainConfig(hidden_sizes=[8], meta_batch_size=np.int64(2),  # type: ignore[arg-type]
                         inner_lr=np.float32(0.1), episodes_per_task=2, iterations=1)
    assert config.hidden_sizes == (8,) and type(config.meta_batch_size) is int
    for bad, message in (({"bogus": 1}, "unknown setting.s. bogus"),
                         ({"max_kl": math.nan}, "--max-kl must be a finite number")):
        with pytest.raises(ConfigError, match=message):
            train(TrainConfig(algo_options=bad, iterations=1), tmp_path / "a", log=None)
    with pytest.raises(ConfigError, match="unknown task family 'os:path'"):
        train(TrainConfig(family="os:path", iterations=1), tmp_path / "b", log=None)
    with pytest.raises(ConfigError, match="settings must be a JSON object or mapping"):
        train("navigation2d", tmp_path / "c", log=None)  # type: ignore[arg-type]
    changed = TrainConfig(iterations=1)
    object.__setattr__(changed, "meta_batch_size", -3)  # changed after validation
    with pytest.raises(ConfigError, match="--meta-batch-size must be >= 1"):
        train(changed, tmp_path / "d", log=None)
    assert not any((tmp_path / name).exists() for name in "abcd")
    learner = train({"iterations": 1, "meta_batch_size": 2, "episodes_per_task": 2,
                     "hidden_sizes": [8]}, tmp_path / "e", log=None)
    tasks = learner.family.test_tasks(2)
    for kwargs, message in (({"adapt_steps": True}, "--adapt-steps must be an integer"),
                            ({"episodes": 2.5}, "--episodes must be an integer"),
                            ({"seed": 2**80}, "--seed must be <= 4294967295")):
        settings = {"adapt_steps": 1, "episodes": 2, "seed": 0, **kwargs}
        with pytest.raises(ConfigError, match=message):
            evaluate(learner, tasks, **settings)
    with pytest.raises(ConfigError, match="no split 'weird'"):
        metarl.load(tmp_path / "e").evaluate(split="weird", n_tasks=2)
