"""Hostile and careless input to every verb: each is refused with exit status 2 and one line
``metarl: error: ...`` naming the problem, before any work, with no traceback; run
directories and earlier outputs are never damaged, and nothing a file names is imported.

``test_every_bad_input_is_refused_cleanly`` runs the table below; the other tests cover what
needs a setup of its own (a planted module, a held lock, interrupted commands)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from processes import start_metarl
from tiny_runs import EVAL, TINY, copy_run

import metarl.run.resources
from metarl.cli import main
from metarl.run.rundir import locked


def edit_checkpoint(run: Path, change) -> Path:
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    change(state)
    torch.save(state, run / "checkpoint.pt")
    return run


# Each case: a function of (good_run, tmp_path) returning the argv, and the message expected.
def train(*argv):
    return lambda run, tmp: ["train", "--out", str(tmp / "new"), *TINY, *argv]


def with_config(content, *argv, binary=False):
    def make(run, tmp):
        path = tmp / "config.json"
        if binary:
            path.write_bytes(content)
        else:
            path.write_text(content if isinstance(content, str) else json.dumps(content))
        return ["train", "--out", str(tmp / "new"), "--config", str(path), *argv]
    return make


def evaluate(change=None, *argv, raw=None):
    def make(run, tmp):
        target = copy_run(run, tmp)
        if raw is not None:
            (target / "checkpoint.pt").write_bytes(raw(
                (target / "checkpoint.pt").read_bytes()))
        if change is not None:
            edit_checkpoint(target, change)
        return ["evaluate", str(target), *EVAL, *argv]
    return make


def on_run(verb, *argv):
    return lambda run, tmp: [verb, str(copy_run(run, tmp)), *[
        a.replace("RUN", str(tmp / "run")) for a in argv]]


def config_of(state, **changes):
    state["config"].update(changes)


CASES = {
    # train: numbers and types
    "max-kl nan": (train("--max-kl", "nan"), "--max-kl must be a finite number"),
    "cg-damping inf": (train("--cg-damping", "inf"), "--cg-damping must be a finite number"),
    "cg-damping nan": (train("--cg-damping", "nan"), "--cg-damping must be a finite number"),
    "backtrack nan": (train("--ls-backtrack-ratio", "nan"), "--ls-backtrack-ratio must be a"),
    "fvp-subsample nan": (train("--fvp-subsample", "nan"), "--fvp-subsample must be a finite"),
    "inner-lr inf": (train("--inner-lr", "inf"), "--inner-lr must be a finite number"),
    "seed 1e23": (train("--seed", "1e23"), "invalid int value: '1e23'"),
    "seed huge": (train("--seed", str(10**23)), "--seed must be <= 4294967295"),
    "episodes 1e9": (train("--episodes-per-task", "1e9"), "invalid int value: '1e9'"),
    "episodes huge": (train("--episodes-per-task", str(10**9)),
                      "--episodes-per-task must be <= 1000000"),
    "batch too big": (train("--meta-batch-size", "2000", "--episodes-per-task", "2000"),
                      "episodes at once is more than 1,000,000"),
    "iterations -1": (train("--iterations", "-1"), "--iterations must be >= 0"),
    "hidden 0": (train("--hidden-sizes", "0"), "--hidden-sizes must be >= 1"),
    "init-std 0": (train("--init-std", "0"), "--init-std must be > 0"),
    "init-output-scale rl2": (train("--algo", "rl2", "--init-output-scale", "0.01"),
                              "--init-output-scale does not apply to --algo rl2"),
    "unknown family": (train("--family", "nowhere"), "unknown task family 'nowhere'"),
    "family module missing": (train("--family", "no_such_module_xyz:Family"),
                              "cannot import 'no_such_module_xyz'"),
    "family colon": (train("--family", ":"), "must be a registered name or MODULE:Class"),
    "unknown algo": (train("--algo", "nope"), "unknown algorithm 'nope'"),
    "option of another learner": (train("--latent-size", "2"),
                                  "unknown setting(s) latent_size for algo 'maml'"),
    "threads 0": (lambda run, tmp: ["--threads", "0", "families"], "--threads must be >= 1"),
    "unknown flag": (train("--bogus"), "unrecognized arguments: --bogus"),
    # train: config files
    "config first_order no": (with_config({"algo_options": {"first_order": "no"}}),
                              "--first-order must be true or false, got 'no'"),
    "config family 5": (with_config({"family": 5}), "--family must be a string, got 5"),
    "config hidden '64'": (with_config({"hidden_sizes": "64"}),
                           "--hidden-sizes must be one or more integers"),
    "config algo_options list": (with_config({"algo_options": [1, 2]}),
                                 "algo_options must be a JSON object"),
    "config unknown key": (with_config({"speed": 2}), "unknown setting(s) speed for algo"),
    "config array": (with_config([1, 2]), "must hold a JSON object"),
    "config not json": (with_config("{nope"), "is not valid JSON"),
    "config binary": (with_config(b"\x80\x81\xfe\xff", binary=True), "is not UTF-8 text"),
    "config directory": (lambda run, tmp: ["train", "--out", str(tmp / "new"), "--config",
                                           str(tmp)], "is a directory"),
    "config missing": (with_config({}, "--config", "/no/such/file.json"), "does not exist"),
    "config family path": (with_config({"family": "os:path"}),
                           "metarl imports code only from the command line"),
    # train: output folders
    "out is a file": (lambda run, tmp: ["train", "--out", str(_file(tmp)), *TINY],
                      "is a file, not a folder"),
    "out empty": (lambda run, tmp: ["train", "--out", "", *TINY], "--out must name a folder"),
    "out under /proc": (lambda run, tmp: ["train", "--out", "/proc/metarl-run", *TINY],
                        "cannot use"),
    "existing run without --resume": (lambda run, tmp: ["train", "--out",
                                                        str(copy_run(run, tmp)), *TINY],
                                      "already holds a run; pass --resume"),
    "resume with another setting": (lambda run, tmp: ["train", "--out", str(copy_run(run, tmp)),
                                                      "--resume", "--inner-lr", "0.3"],
                                    "a resumed run keeps its settings, but --inner-lr 0.3"),
    "resume lower target": (lambda run, tmp: ["train", "--out", str(_resumable(run, tmp)),
                                              "--resume", "--iterations", "0"],
                            "is below the 1 iterations the run"),
    "resume with config": (lambda run, tmp: ["train", "--out", str(copy_run(run, tmp)),
                                             "--resume", "--config", str(_file(tmp))],
                           "--config does not go with --resume"),
    "resume metrics header": (lambda run, tmp: ["train", "--out", str(_bad_header(run, tmp)),
                                                "--resume", "--iterations", "2"],
                              "has the columns"),
    "resume metrics missing rows": (lambda run, tmp: ["train", "--out",
                                                      str(_no_rows(run, tmp)), "--resume",
                                                      "--iterations", "2"],
                                    "does not log iterations 1..1"),
    "resume metrics not utf-8": (lambda run, tmp: ["train", "--out",
                                                   str(_binary_metrics(run, tmp)), "--resume",
                                                   "--iterations", "2"],
                                 "is not a metrics log"),
    "leftovers without checkpoint": (lambda run, tmp: ["train", "--out",
                                                       str(_leftovers(run, tmp)), *TINY],
                                     "but no checkpoint.pt"),
    # evaluate: checkpoints
    "run missing": (lambda run, tmp: ["evaluate", str(tmp / "missing")], "does not exist"),
    "no checkpoint": (lambda run, tmp: ["evaluate", str(tmp)], "no checkpoint"),
    "zero-byte checkpoint": (evaluate(raw=lambda data: b""), "is empty (0 bytes)"),
    "truncated checkpoint": (evaluate(raw=lambda data: data[: len(data) // 2]),
                             "is truncated or corrupt"),
    "garbage checkpoint": (evaluate(raw=lambda data: b"not a checkpoint" * 10),
                           "is truncated or corrupt"),
    "checkpoint without config": (evaluate(lambda state: state.pop("config")),
                                  "has no 'config' section"),
    "iteration abc": (evaluate(lambda state: state.update(iteration="abc")),
                      "has iteration 'abc'"),
    "iteration -3": (evaluate(lambda state: state.update(iteration=-3)), "has iteration -3"),
    "checkpoint family by path": (evaluate(lambda state: config_of(state, family="os:path")),
                                  "unknown task family 'os:path'"),
    "checkpoint bad config value": (evaluate(lambda state: config_of(state, inner_lr="x")),
                                    "has a bad config: --inner-lr must be a number"),
    "checkpoint wrong shapes": (evaluate(lambda state: config_of(state, hidden_sizes=[9])),
                                "does not fit maml on navigation2d"),
    "nan weights": (evaluate(lambda state: state["learner"]["policy"]["layers.0.weight"]
                             .fill_(float("nan"))), "holds non-finite weights (policy."),
    "json onto the checkpoint": (on_run("evaluate", *EVAL, "--json", "RUN/checkpoint.pt"),
                                 "would replace a file of the run"),
    "json is a folder": (on_run("evaluate", *EVAL, "--json", "RUN"), "is a folder"),
    "split weird": (on_run("evaluate", *EVAL[:4], "--split", "weird"), "no split 'weird'"),
    "episodes 0": (on_run("evaluate", "--episodes", "0"), "--episodes must be >= 1"),
    "adapt-steps -1": (on_run("evaluate", "--adapt-steps", "-1"), "--adapt-steps must be >= 0"),
    "test-tasks 0": (on_run("evaluate", "--test-tasks", "0"), "--test-tasks must be >= 1"),
    # plot
    "plot onto metrics": (on_run("plot", "--out", "RUN/metrics.csv"),
                          "would replace a file of the run"),
    "plot missing run": (lambda run, tmp: ["plot", str(tmp / "missing")], "no metrics.csv"),
    "plot binary metrics": (lambda run, tmp: ["plot", str(_binary_metrics(run, tmp))],
                            "is not a metrics log"),
    # watch
    "watch width huge": (on_run("watch", "--width", "10000000", "--record", "RUN/rec"),
                         "--width must be in [160, 8192]"),
    "watch width tiny": (on_run("watch", "--width", "50", "--record", "RUN/rec"),
                         "--width must be in [160, 8192]"),
    "watch frames 0": (on_run("watch", "--frames", "0", "--record", "RUN/rec"),
                       "--frames must be in [1, 100000]"),
    "watch task nan": (on_run("watch", "--task", '{"goal": [NaN, 0]}', "--record", "RUN/rec"),
                       "'goal' must be a finite number, got nan"),
    "watch task not json": (on_run("watch", "--task", "{goal", "--record", "RUN/rec"),
                            "is not valid JSON"),
    "watch task wrong keys": (on_run("watch", "--task", '{"speed": 1}', "--record", "RUN/rec"),
                              "expected keys ['goal']"),
    "watch record onto a file": (on_run("watch", "--record", "RUN/metrics.csv"),
                                 "is a file, not a folder"),
    # compare, check, bench, families
    "compare out is a file": (lambda run, tmp: ["compare", "--family", "navigation2d",
                                                "--algos", "random", "--out", str(_file(tmp))],
                              "is a file, not a folder"),
    "compare unknown algo": (lambda run, tmp: ["compare", "--family", "navigation2d",
                                               "--algos", "maml,nope", "--out", str(tmp / "c")],
                             "unknown learner 'nope'"),
    "compare run of another family": (lambda run, tmp: ["compare", "--family", "catch",
                                                        "--algos", "maml", "--run",
                                                        f"maml={run}", "--out", str(tmp / "c")],
                                      "not maml on catch"),
    "check colon": (lambda run, tmp: ["check", ":"], "must be a registered name or MODULE"),
    "check missing attribute": (lambda run, tmp: ["check", "os:NoSuchFamily"],
                                "has no attribute 'NoSuchFamily'"),
    "check missing file": (lambda run, tmp: ["check", str(tmp / "nope.py") + ":X"],
                           "no Python file"),
    "check broken file": (lambda run, tmp: ["check", str(_broken_module(tmp)) + ":X"],
                          "broken.py:3"),
    "import broken file": (lambda run, tmp: ["--import", str(_broken_module(tmp)), "families"],
                           "broken.py:3"),
    "bench options not an object": (lambda run, tmp: ["bench", "--algo-options", "[1]"],
                                    "must be a JSON object"),
    "bench options bad json": (lambda run, tmp: ["bench", "--algo-options", "{x"],
                               "--algo-options is not valid JSON"),
    "bench repeats 0": (lambda run, tmp: ["bench", "--repeats", "0"], "--repeats must be >= 1"),
    "bench unknown family": (lambda run, tmp: ["bench", "--families", "nowhere"],
                             "unknown task family 'nowhere'"),
    # outputs spelled to land on a run's own files, devices and links (never replaced)
    "json through .. onto the checkpoint": (
        on_run("evaluate", *EVAL, "--json", "RUN/nope/../checkpoint.pt"),
        "would replace a file of the run"),
    "json through .. onto the metrics": (
        on_run("evaluate", *EVAL, "--json", "RUN/nope/../metrics.csv"),
        "would replace a file of the run"),
    "json onto another run": (lambda run, tmp: ["evaluate", str(copy_run(run, tmp)), *EVAL,
                                                "--json", f"{copy_run(run, tmp, 'other')}/x/../"
                                                "config.json"],
                              "would replace a file of the run"),
    "plot through .. onto the config": (on_run("plot", "--out", "RUN/nope/../config.json"),
                                        "would replace a file of the run"),
    "json onto /dev/null": (on_run("evaluate", *EVAL, "--json", "/dev/null"),
                            "is not a regular file"),
    "json onto /dev/stdout": (on_run("evaluate", *EVAL, "--json", "/dev/stdout"),
                              "is a symbolic link"),
    "plot onto /dev/null": (on_run("plot", "--out", "/dev/null"), "is not a regular file"),
    # tampered metrics logs
    "metrics not a number": (lambda run, tmp: ["plot", str(_tampered_metrics(
        run, tmp, lambda rows: rows[:1] + [rows[1].replace(rows[1].split(",")[1], "abc", 1)]))],
                             "column 'return_before': 'abc' is not a number"),
    "metrics without timing": (lambda run, tmp: [
        "compare", "--family", "navigation2d", "--algos", "maml", *EVAL, "--out",
        str(tmp / "c"), "--run", f"maml={_without_column(run, tmp, 'iteration_seconds')}"],
                               "has no column 'iteration_seconds'"),
    "metrics iteration half": (lambda run, tmp: ["plot", str(_tampered_metrics(
        run, tmp, lambda rows: rows[:1] + ["1.5" + rows[1][1:]]))],
                               "iteration '1.5' is not a whole number"),
    # tasks outside their family's types and ranges
    "watch task goal 1e308": (on_run("watch", "--task", '{"goal": [1e308, 0]}', "--record",
                                     "RUN/rec"), "must be two coordinates in [-10, 10]"),
    "watch task goal 1e39": (on_run("watch", "--task", '{"goal": [0, 1e39]}', "--record",
                                    "RUN/rec"), "must be two coordinates in [-10, 10]"),
    "watch task null": (on_run("watch", "--task", '{"goal": null}', "--record", "RUN/rec"),
                        "'goal' must be a list, got None"),
    "watch task strings": (on_run("watch", "--task", '{"goal": ["a", "b"]}', "--record",
                                  "RUN/rec"), "'goal' must be a finite number, got 'a'"),
    "watch task nested": (on_run("watch", "--task", '{"goal": [[0.1], [0.2]]}', "--record",
                                 "RUN/rec"), "'goal' must be a finite number, got [0.1]"),
    "watch task too deep": (on_run("watch", "--task", '{"goal": ' + "[" * 100_000
                                   + "]" * 100_000 + "}", "--record", "RUN/rec"),
                            "--task is JSON nested too deeply"),
    # huge and deeply nested settings
    "config nested too deep": (with_config("[" * 100_000 + "]" * 100_000),
                               "is JSON nested too deeply"),
    "config too large": (with_config({"ray_address": "x" * 2_000_000}),
                         "a config file holds settings, at most 1,000,000"),
    "config value too long": (with_config({"ray_address": "x" * 5000}),
                              "--ray-address is 5,000 characters long; at most 1,000"),
    "config unknown huge key": (with_config({"k" * 5000: 1}), "unknown setting(s) kkkk"),
    # what cannot fit in memory, refused before any work
    "policy too large": (train("--hidden-sizes", "65536", "65536"),
                         "(--hidden-sizes 65536 65536) would need about"),
    "training batch too large": (train("--meta-batch-size", "1000", "--episodes-per-task",
                                       "1000", "--hidden-sizes", "64"),
                                 "a training iteration of 1,000 tasks x 1,000 episodes would"),
    "evaluation too large": (on_run("evaluate", "--test-tasks", "1000000", "--adapt-steps", "1",
                                    "--episodes", "20"), "episodes at once is more than"),
    "evaluation memory": (on_run("evaluate", "--test-tasks", "1000", "--adapt-steps", "1",
                                 "--episodes", "1000"), "would need about"),
    "watch episodes huge": (on_run("watch", "--episodes", "1000000", "--record", "RUN/rec"),
                            "adapting to 1 tasks in 3 blocks of 1,000,000 episodes would need"),
    "checkpoint of a huge policy": (evaluate(lambda state: config_of(
        state, hidden_sizes=[65536, 65536])), "would need about"),
}


def _tampered_metrics(run: Path, tmp: Path, change) -> Path:
    target = copy_run(run, tmp)
    rows = (target / "metrics.csv").read_text().splitlines()
    (target / "metrics.csv").write_text("\n".join(change(rows)) + "\n")
    return target


def _without_column(run: Path, tmp: Path, column: str) -> Path:
    target = copy_run(run, tmp)
    rows = [line.split(",") for line in (target / "metrics.csv").read_text().splitlines()]
    index = rows[0].index(column)
    (target / "metrics.csv").write_text(
        "\n".join(",".join(v for i, v in enumerate(row) if i != index) for row in rows) + "\n")
    return target



def _file(tmp: Path) -> Path:
    path = tmp / "a-file"
    path.write_text("{}")
    return path


def _resumable(run: Path, tmp: Path) -> Path:
    return copy_run(run, tmp)


def _bad_header(run: Path, tmp: Path) -> Path:
    target = copy_run(run, tmp)
    lines = (target / "metrics.csv").read_text().splitlines()
    (target / "metrics.csv").write_text("\n".join(["iteration,other", *lines[1:]]) + "\n")
    return target


def _no_rows(run: Path, tmp: Path) -> Path:
    target = copy_run(run, tmp)
    header = (target / "metrics.csv").read_text().splitlines()[0]
    (target / "metrics.csv").write_text(header + "\n")
    return target


def _binary_metrics(run: Path, tmp: Path) -> Path:
    target = copy_run(run, tmp)
    (target / "metrics.csv").write_bytes(b"\x80\x81\xfe\xff\x00\n")
    return target


def _leftovers(run: Path, tmp: Path) -> Path:
    target = copy_run(run, tmp)
    (target / "checkpoint.pt").unlink()
    return target


def _broken_module(tmp: Path) -> Path:
    path = tmp / "broken.py"
    path.write_text("import math\n\nraise RuntimeError('a bug in the family')\n")
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("case", list(CASES))
def test_every_bad_input_is_refused_cleanly(case, good_run, tmp_path, capsys, monkeypatch):
    # The memory estimates are judged against a fixed 16 GiB, whatever this machine has free.
    monkeypatch.setattr(metarl.run.resources, "available_bytes", lambda: 16 * 2**30)
    make, message = CASES[case]
    argv = make(good_run, tmp_path)
    before = _snapshot(tmp_path)
    rc = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert rc == 2, (case, captured.err)
    assert len(lines) == 1 and lines[0].startswith("metarl: error: "), captured.err
    assert message in lines[0], lines[0]
    assert "Traceback" not in captured.err + captured.out
    after = _snapshot(tmp_path)
    assert after == before, sorted(set(after) ^ set(before))  # nothing written or changed
    assert not (tmp_path / "new").exists()


def test_the_count_of_refused_inputs(capsys):
    """How many hostile inputs the table tries (all must be refused: the test above)."""
    assert len(CASES) >= 80
    print(f"{len(CASES)} hostile inputs across train, evaluate, plot, watch, compare, check, "
          "bench and the global flags")


def test_a_checkpoint_never_imports_the_module_it_names(good_run, tmp_path, monkeypatch,
                                                        capsys):
    marker = tmp_path / "ran"
    (tmp_path / "planted_family.py").write_text(
        f"open({str(marker)!r}, 'w').write('code ran')\nclass Family: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    run = edit_checkpoint(copy_run(good_run, tmp_path),
                          lambda state: config_of(state, family="planted_family:Family"))
    for argv in (["evaluate", str(run), *EVAL], ["watch", str(run), "--record", str(tmp_path)],
                 ["train", "--out", str(run), "--resume", "--iterations", "3"]):
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert ("unknown task family 'planted_family:Family'" in error
                or "has family='planted_family:Family'" in error), error
    assert not marker.exists()


def test_a_second_writer_gets_the_holders_pid(good_run, tmp_path, capsys):
    run = copy_run(good_run, tmp_path)
    with locked(run):
        assert main(["train", "--out", str(run), "--resume", "--iterations", "2"]) == 2
    assert f"in use by another metarl process (pid {os.getpid()})" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume", "--iterations", "2"]) == 0


def test_stale_temporary_files_are_cleaned_and_modes_follow_the_umask(good_run, tmp_path):
    run = copy_run(good_run, tmp_path)
    (run / ".checkpoint.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    old = os.umask(0o022)
    try:
        assert main(["train", "--out", str(run), "--resume", "--iterations", "2"]) == 0
    finally:
        os.umask(old)
    assert not list(run.glob(".*.tmp"))
    assert (run / "checkpoint.pt").stat().st_mode & 0o777 == 0o644


def test_startup_interrupted_is_a_quiet_exit(monkeypatch, capsys):
    import metarl.cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(metarl.cli, "build_parser", interrupted)
    assert main(["families"]) == 130
    assert "Traceback" not in capsys.readouterr().err


def interrupt_at_random(argv: list[str], cwd: Path, delays: list[float]) -> None:
    """Run the command once per delay, interrupting it (SIGINT) that many seconds in."""
    for delay in delays:
        process = start_metarl(*argv, cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)


@pytest.mark.parametrize("verb", ["compare", "watch"])
def test_interrupted_outputs_leave_the_previous_ones_intact(verb, good_run, tmp_path):
    out = tmp_path / "out"
    if verb == "compare":
        argv = ["compare", "--family", "navigation2d", "--algos", "maml,random", "--run",
                f"maml={good_run}", "--out", str(out), *EVAL]
    else:
        argv = ["watch", str(good_run), "--record", str(out), "--frames", "40", "--width",
                "320"]
    assert main([*argv, "--test-tasks", "3"] if verb == "compare" else argv) == 0
    first = _snapshot(out)
    rng = np.random.default_rng(0)
    interrupt_at_random(argv, tmp_path, list(rng.uniform(3.0, 9.0, size=3)))
    now = _snapshot(out)
    assert set(now) == set(first)  # no half-written or stray files
    if verb == "compare":  # either the old set or a complete new one, never a mix
        tasks = json.loads(now["results.json"])["test_tasks"]
        assert f"{tasks} held-out tasks" in now["results.md"].decode()
    else:
        assert now["watch.gif"] == first["watch.gif"] or len(now["watch.gif"]) > 1000
