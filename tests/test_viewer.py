"""The adaptation viewer: headless frames, panels, recording, errors, and a real X window."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pygame
import pytest
import torch
from families import conformance_families
from PIL import Image

from metarl.cli import build_parser
from metarl.config import ConfigError, TrainConfig
from metarl.run.directory import RunDirectory
from metarl.run.factory import build_learner
from metarl.run.training import train
from metarl.tools import viewer
from metarl.tools.viewer import AdaptationView, Window, record, task_summary

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """The viewer's forward passes are tiny; threads only add contention (as `watch` sets)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("run")
    config = TrainConfig(iterations=2, meta_batch_size=2, episodes_per_task=2, device="cpu")
    train(config, path, log=None)
    return path


def watch(*argv: str) -> None:
    args = build_parser().parse_args(["watch", *map(str, argv)])
    args.run(args)


def make_view(run_dir: Path, **kwargs: object) -> AdaptationView:
    learner = RunDirectory(run_dir).load(torch.device("cpu"))
    task = learner.family.test_tasks(1, seed=0)[0]
    options = {"adapt_steps": 1, "episodes": 4, "deterministic": True, **kwargs}
    return AdaptationView(learner, task, **options)


def is_blank(image: np.ndarray) -> bool:
    return len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) < 3


def run_steps(view: AdaptationView, steps: int) -> list[np.ndarray]:
    for _ in range(steps):
        view.step()
    return view.frames()


def test_panels_differ_exactly_where_the_policies_differ(run_dir: Path) -> None:
    view = make_view(run_dir)
    adapted = run_steps(view, 25)
    assert not any(is_blank(frame) for frame in adapted)
    assert not np.array_equal(adapted[0], adapted[1])

    view.actor.params = {key: value[:1].repeat(2, *[1] * (value.dim() - 1))
                         for key, value in view.actor.params.items()}
    view.restart()
    same = run_steps(view, 25)
    assert np.array_equal(same[0], same[1])
    view.close()


def test_side_by_side_view_is_drawn_headless(run_dir: Path) -> None:
    view = make_view(run_dir, adapt_steps=2)
    surface = pygame.Surface(view.natural_size(600))
    run_steps(view, 10)
    view.draw(surface)
    picture = np.transpose(pygame.surfarray.array3d(surface), (1, 0, 2))
    third = picture.shape[1] // 3
    header = 80
    panels = [picture[header:, i * third + 5:(i + 1) * third - 5] for i in range(3)]
    assert not any(is_blank(panel) for panel in panels)
    assert not np.array_equal(panels[0], panels[2])
    view.close()


@pytest.mark.parametrize("name", conformance_families())
def test_every_family_is_watchable(name: str) -> None:
    config = TrainConfig(family=name, hidden_sizes=(8,), device="cpu")
    learner = build_learner(config, torch.device("cpu"))
    task = learner.family.test_tasks(1, seed=0)[0]
    view = AdaptationView(learner, task, adapt_steps=1, episodes=2)
    surface = pygame.Surface(view.natural_size(400))
    for _ in range(3):
        view.step()
    view.draw(surface)
    assert not is_blank(pygame.surfarray.array3d(surface))
    assert task_summary(learner.family, task)
    view.close()


def test_episodes_restart_when_they_end(run_dir: Path) -> None:
    view = make_view(run_dir)
    horizon = view.family.max_episode_steps
    run_steps(view, horizon + 2)
    assert view.episode == [1, 1]
    assert all(value is not None for value in view.last_returns)
    view.close()


def test_record_writes_png_frames_and_a_gif(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "record"
    watch(run_dir, "--record", out, "--frames", 6, "--width", 480, "--adapt-steps", 1,
          "--episodes", 2)
    pngs = sorted(out.glob("frame_*.png"))
    assert len(pngs) == 6
    first = np.asarray(Image.open(pngs[0]).convert("RGB"))
    assert first.shape[1] == 480 and not is_blank(first)
    with Image.open(out / "watch.gif") as gif:
        assert gif.n_frames == 6
        assert gif.size == (480, first.shape[0])


def test_ctrl_c_while_a_recording_is_published_waits_for_the_whole_of_it(
        run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "record"
    view = make_view(run_dir)
    done = threading.Event()
    other_thread = threading.Thread(target=done.wait)  # a signal may land on any thread
    other_thread.start()
    try:
        record(view, out, frames=5, width=240)
        renames = []

        def interrupted_replace(source, target):
            if not renames:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the first frame moves in
            renames.append(target)
            return os.rename(source, target)

        monkeypatch.setattr(viewer.os, "replace", interrupted_replace)
        with pytest.raises(KeyboardInterrupt):
            record(view, out, frames=3, width=240)
    finally:
        done.set()
        other_thread.join()
        view.close()
    assert len(renames) == 4  # three frames and the GIF, then the interrupt
    assert sorted(path.name for path in out.glob("frame_*.png")) == [
        "frame_0000.png", "frame_0001.png", "frame_0002.png"]
    with Image.open(out / "watch.gif") as gif:
        assert gif.n_frames == 3


def test_keys_drive_the_window(run_dir: Path, tmp_path: Path) -> None:
    view = make_view(run_dir)
    window = Window(view, 480, tmp_path)
    try:
        window.run(3)
        first_task = view.task
        for key in (pygame.K_SPACE, pygame.K_n, pygame.K_s):
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key))
        pygame.event.post(pygame.event.Event(pygame.VIDEORESIZE, w=640, h=300))
        window.run(1)
        assert window.paused and view.task != first_task
        assert window.screen.get_size() == (640, 300)
        assert len(list(tmp_path.glob("watch-navigation2d-*.png"))) == 1
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_q))
        window.run()
        assert not window.running
    finally:
        window.close()
        view.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--task", "{goal"), "not valid JSON"),
        (("--task", '{"goal": [0.1]}'), "not a navigation2d task"),
        (("--task", '{"speed": 1}'), "expected keys"),
        (("--split", "hard"), "no split 'hard'"),
        (("--episodes", "0"), "--episodes must be >= 1"),
    ],
)
def test_bad_arguments_are_named(run_dir: Path, argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        watch(run_dir, "--record", "unused", *argv)


def test_missing_run_dir_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        watch(tmp_path / "nowhere", "--record", tmp_path / "out")


WINDOW_SCRIPT = textwrap.dedent(
    """
    import json, subprocess, sys
    from pathlib import Path
    import pygame, torch
    torch.set_num_threads(1)
    from metarl.run.directory import RunDirectory
    from metarl.tools.viewer import AdaptationView, Window

    run_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    learner = RunDirectory(run_dir).load(torch.device("cpu"))
    task = learner.family.test_tasks(1, seed=0)[0]
    view = AdaptationView(learner, task, adapt_steps=1, episodes=4)
    window = Window(view, 600, out)
    window.run(20)
    for key in (pygame.K_SPACE, pygame.K_s):
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key))
    window.run(2)
    window_id = str(pygame.display.get_wm_info()["window"])
    capture = subprocess.run(["import", "-window", window_id, str(out / "x11.png")])
    print(json.dumps({"driver": pygame.display.get_driver(), "capture": capture.returncode,
                      "size": list(window.screen.get_size())}))
    window.close()
    """
)


@pytest.mark.skipif(
    shutil.which("xvfb-run") is None or shutil.which("import") is None,
    reason="needs xvfb-run (apt package xvfb) and import (apt package imagemagick)",
)
def test_real_window_under_xvfb(run_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "window.py"
    script.write_text(WINDOW_SCRIPT)
    env = {**os.environ, "SDL_VIDEODRIVER": "x11"}
    result = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1024x768x24", sys.executable, str(script),
         str(run_dir), str(tmp_path)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["driver"] == "x11" and report["capture"] == 0
    shot = np.asarray(Image.open(tmp_path / "watch-navigation2d-000.png").convert("RGB"))
    assert not is_blank(shot)
    width, height = report["size"]
    assert shot.shape[:2] == (height, width)
    # The X server's copy of the window (ImageMagick) is what the viewer drew.
    on_screen = np.asarray(Image.open(tmp_path / "x11.png").convert("RGB"))
    assert on_screen.shape == shot.shape
    assert np.abs(on_screen.astype(int) - shot.astype(int)).mean() < 5
