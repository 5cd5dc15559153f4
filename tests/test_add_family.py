"""The add-a-family path: the template family is sound, and a family in an outside package
registers through the ``metarl.plugins`` entry point and trains without touching metarl."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from metarl.family.checker import check_family

TEMPLATE = Path(__file__).resolve().parents[1] / "docs" / "family_template.py"


def test_template_family_passes_the_checker():
    spec = importlib.util.spec_from_file_location("family_template", TEMPLATE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["family_template"] = module
    spec.loader.exec_module(module)
    assert check_family(module.LineTarget()) == []
    assert check_family(module.DiscreteLineTarget()) == []


def make_outside_package(root: Path) -> dict[str, str]:
    package = root / "line_plugin"
    package.mkdir()
    shutil.copy(TEMPLATE, package / "__init__.py")
    info = root / "line_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: line-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[metarl.plugins]\nline = line_plugin\n")
    return {**os.environ, "PYTHONPATH": str(root)}


def run_metarl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "metarl", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_outside_package_registers_checks_and_trains(tmp_path):
    env = make_outside_package(tmp_path)
    assert "line-target" in run_metarl("families", env=env).stdout
    checked = run_metarl("check", "line-target", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    run = tmp_path / "run"
    trained = run_metarl("train", "--family", "line-target", "--iterations", "2",
                         "--meta-batch-size", "2", "--episodes-per-task", "2",
                         "--out", str(run), env=env)
    assert trained.returncode == 0, trained.stderr
    assert (run / "checkpoint.pt").exists()
    by_path = run_metarl("check", "line_plugin:LineTarget", env=env)
    assert by_path.returncode == 0, by_path.stdout + by_path.stderr


def test_a_broken_plugin_is_skipped_with_a_warning(tmp_path):
    env = make_outside_package(tmp_path)
    broken = tmp_path / "broken_plugin"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise ImportError('a missing dependency')\n")
    info = tmp_path / "broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[metarl.plugins]\nbroken = broken_plugin\n")
    for argv in (["--help"], ["families"], ["check", "navigation2d"]):
        done = run_metarl(*argv, env=env)
        assert done.returncode == 0, done.stderr
    warning = [line for line in done.stderr.splitlines() if "broken" in line]
    assert warning and "metarl plugin 'broken' (broken_plugin) was skipped: ImportError: a " \
        "missing dependency" in warning[0]
    assert "line-target" in run_metarl("families", env=env).stdout  # the others still load


def test_plugin_families_are_visible_to_gymnasium_after_import_metarl(tmp_path):
    env = make_outside_package(tmp_path)
    script = ("import gymnasium, metarl\n"
              "env = gymnasium.make('metarl/LineTarget-v0', task={'target': 0.5})\n"
              "print(env.reset(seed=0)[0].shape, env.unwrapped.task)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "(1,) LineTask(target=0.5)" in done.stdout


def test_a_family_from_a_file_trains_checks_and_evaluates(tmp_path):
    family_file = tmp_path / "my_line.py"
    shutil.copy(TEMPLATE, family_file)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    checked = run_metarl("check", f"{family_file}:LineTarget", "-v", env=env)
    assert checked.returncode == 0 and "ok      randomness" in checked.stdout, checked.stdout
    run = tmp_path / "run"
    trained = run_metarl("train", "--family", f"{family_file}:LineTarget", "--iterations", "1",
                         "--meta-batch-size", "2", "--episodes-per-task", "2", "--out",
                         str(run), env=env)
    assert trained.returncode == 0, trained.stderr
    assert json.loads((run / "config.json").read_text())["family"] == "line-target"
    alone = run_metarl("evaluate", str(run), "--test-tasks", "2", env=env)
    assert alone.returncode == 2 and "metarl --import MODULE_OR_FILE" in alone.stderr
    imported = run_metarl("--import", str(family_file), "evaluate", str(run), "--test-tasks",
                          "2", "--adapt-steps", "1", "--episodes", "2", env=env)
    assert imported.returncode == 0, imported.stderr
