"""The example scripts run end to end on tiny budgets (as subprocesses, like a user would), and
the README's "Training from Python" examples are exactly these files."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ("quickstart.py", "adapt_and_act.py", "train.py", "evaluate.py")


def run(cwd: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                            timeout=600, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_quickstart_trains_evaluates_saves_and_loads(tmp_path: Path) -> None:
    printed = run(tmp_path, str(ROOT / "scripts/quickstart.py"), "1")
    assert "after 3 steps:" in printed and (tmp_path / "nav.pt").exists()


@pytest.mark.parametrize("algo", ["maml", "rl2"])
def test_adapt_then_predict_in_a_gymnasium_env(algo: str, tmp_path: Path) -> None:
    printed = run(tmp_path, str(ROOT / "scripts/adapt_and_act.py"), algo, "1")
    assert re.search(rf"{algo} on NavigationTask.*: -?\d+\.\d+ in its first episode", printed)


def test_train_then_evaluate_a_run_directory(tmp_path: Path) -> None:
    printed = run(tmp_path, str(ROOT / "scripts/train.py"), "run", "1")
    assert "iteration 1: adaptation gains" in printed and "maml: 1 iterations in run" in printed
    printed = run(tmp_path, str(ROOT / "scripts/evaluate.py"), "run", "3")
    assert "maml after 1 iterations on 3 held-out tasks" in printed
    saved = json.loads((tmp_path / "evaluation.json").read_text())
    assert saved["test_tasks"] == 3 and len(saved["share_improved"]) == 4


def test_the_readme_shows_these_files() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Training from Python", 1)[1].split("\n## ", 1)[0]
    shown = dict(re.findall(r"`scripts/([\w.]+)`:\n\n```python\n(.*?)```", section, re.S))
    assert set(shown) == set(EXAMPLES)
    for name, code in shown.items():
        assert code == (ROOT / "scripts" / name).read_text(), name


def test_oracle_returns_script(tmp_path: Path) -> None:
    printed = run(tmp_path, str(ROOT / "scripts/oracle_returns.py"), "--families",
                  "navigation2d,maze", "--tasks", "200", "--episodes", "1")
    assert "| navigation2d | test | -0.54 [" in printed
    assert "| navigation2d | ood |" in printed and "| maze | ood |" in printed


def test_evaluate_prior_script_plays_the_prior_beside_the_trial(tmp_path: Path) -> None:
    import metarl

    metarl.make("navigation2d", algo="varibad", meta_batch_size=4, hidden_sizes=[8],
                encoder_hidden=8).save(tmp_path / "varibad.pt")
    metarl.make("navigation2d", algo="maml", hidden_sizes=[8]).save(tmp_path / "maml.pt")
    printed = run(tmp_path, str(ROOT / "scripts/evaluate_prior.py"), "varibad.pt",
                  "--test-tasks", "3", "--json", "prior.json")
    assert "step 0: the prior" in printed and "varibad on navigation2d" in printed
    saved = json.loads((tmp_path / "prior.json").read_text())
    assert saved["test_tasks"] == 3 and len(saved["mean_return"]) == 2
    refused = subprocess.run([sys.executable, str(ROOT / "scripts/evaluate_prior.py"),
                              "maml.pt"], capture_output=True, text=True, cwd=tmp_path)
    assert refused.returncode == 2 and "adapts by gradient steps" in refused.stderr


def test_paired_gain_script_compares_two_evaluations_task_by_task(tmp_path: Path) -> None:
    common = {"family": "ml1-push", "split": "test", "test_tasks": 3, "seed": 0, "algo": "rl2"}
    base = {**common, "task_returns": [[10.0, 20.0, 30.0]], "task_successes": [[0.0, 0.0, 1.0]]}
    result = {**common, "task_returns": [[0.0, 0.0, 0.0], [12.0, 26.0, 28.0]],
              "task_successes": [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]}
    (tmp_path / "base.json").write_text(json.dumps(base))
    (tmp_path / "result.json").write_text(json.dumps(result))
    printed = run(tmp_path, str(ROOT / "scripts/paired_gain.py"), "base.json", "result.json")
    # gains 2, 6, -2 in return (mean +2.0); 100, 100, 0 success points (mean +66.7)
    assert "return: +2.0 [" in printed and "67% of tasks better, 33% worse" in printed
    assert "success (points): +66.7 [" in printed
    (tmp_path / "other.json").write_text(json.dumps({**result, "seed": 1}))
    refused = subprocess.run([sys.executable, str(ROOT / "scripts/paired_gain.py"), "base.json",
                              "other.json"], capture_output=True, text=True, cwd=tmp_path)
    assert refused.returncode == 2 and "differ in seed" in refused.stderr
