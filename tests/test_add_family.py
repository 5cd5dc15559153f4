"""The add-a-family path: the template family is sound, and a family in an outside package
registers through the ``metarl.plugins`` entry point and trains without touching metarl."""

import importlib.util
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
