"""The example scripts run end to end on tiny budgets (as subprocesses, like a user would)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_train_and_evaluate_scripts(tmp_path):
    out = tmp_path / "run"
    printed = run("scripts/train.py", "--out", str(out), "--iterations", "2",
                  "--meta-batch-size", "2", "--episodes-per-task", "2")
    assert "trained maml on navigation2d" in printed
    printed = run("scripts/evaluate.py", str(out), "--test-tasks", "3", "--adapt-steps", "1",
                  "--episodes", "2")
    assert "after 2 meta-iterations" in printed and "| 1 |" in printed


def test_oracle_returns_script():
    printed = run("scripts/oracle_returns.py", "--families", "navigation2d,maze",
                  "--tasks", "200", "--episodes", "1")
    assert "| navigation2d | test | -0.54 [" in printed
    assert "| navigation2d | ood |" in printed and "| maze | ood |" in printed
