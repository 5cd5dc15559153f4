"""Watch a meta-learner adapt: its policy before adaptation and after each step, side by side.

``metarl watch RUN_DIR`` loads a run, picks a held-out task and adapts to it as ``metarl
evaluate`` does (:meth:`metarl.learn.learner.Learner.adaptation`): K blocks of episodes,
adapting after each. The learner's :class:`~metarl.learn.adaptation.Actor` for the task then
plays it live, one panel side by side for the learner before adaptation and after each step
(theta_0 and the adapted parameters; for RL^2 its memory after k blocks of the trial, restored
at every episode start). The pictures are the envs' own ``rgb_array`` frames, so the viewer
holds no family-specific code: a new family, or a new learner, gets it unchanged.

Headless, ``--record DIR`` writes the same view as PNG frames and an animated GIF (Pillow,
which comes with matplotlib).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from metarl.config import ConfigError, parse_json
from metarl.family.base import held_out_tasks
from metarl.family.drawing import font
from metarl.learn.adaptation import Actor
from metarl.learn.learner import Learner
from metarl.run.evaluation import adaptation_trajectory
from metarl.run.rundir import RunDirectoryError, locked, uninterruptible

BACKGROUND = (250, 250, 248)
TEXT = (30, 30, 30)
MUTED = (110, 110, 120)
DIVIDER = (200, 200, 205)
STEP_COLOURS = ((190, 60, 50), (40, 110, 200), (30, 140, 80), (140, 70, 170))
"""Label colour of panel k (before adaptation, then after each step; the last one repeats)."""
GIF_COLOURS = 128
"""Colours in a recorded GIF's shared palette (the families draw with flat colours)."""
MAX_WINDOW_WIDTH = 1280
"""The default width of the whole view, when the panels' natural width is wider."""
GIF = "watch.gif"
RECORDING_PREFIX = ".recording."
"""Temporary folders of recordings in progress (a killed one leaves its folder behind)."""


def pick_task(family: Any, task_json: str | None, seed: int, split: str) -> Any:
    """The task ``--task`` describes (JSON), else the first task of the held-out split ``seed``."""
    family.check_split(split)
    if task_json is None:
        return held_out_tasks(family, 1, seed, split)[0]
    data = parse_json(task_json, "--task")
    if not isinstance(data, Mapping):
        raise ConfigError(f"--task must be a JSON object, got {task_json!r}")
    try:
        task = family.task_from_json(data)
        family.make_env(task).close()
    except (TypeError, ValueError) as error:
        raise ConfigError(f"--task is not a {family.name} task: {error}") from None
    return task


def adaptation_actor(
    learner: Learner, task: Any, adapt_steps: int, episodes: int, seed: int
) -> tuple[Actor, list[float]]:
    """The learner adapted to ``task`` as ``metarl evaluate`` adapts: an actor whose column k
    acts as after k steps, and the mean return of each block of episodes."""
    adaptation = adaptation_trajectory(learner, [task], adapt_steps, episodes, seed)
    return adaptation.actor(0), [float(r[0]) for r in adaptation.returns]


def task_summary(family: Any, task: Any) -> str:
    """The task's fields in short: numbers rounded, long arrays shown by their shape."""
    parts = []
    for key, value in family.task_to_json(task).items():
        parts.append(f"{key} {_short(value)}")
    return "  ".join(parts)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if not isinstance(value, list):
        return str(value)
    if len(value) <= 4 and not any(isinstance(v, list) for v in value):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return "[" + "x".join(str(n) for n in shape) + "]"


def step_label(step: int) -> str:
    """``before adaptation``, ``after 1 step``, ``after 2 steps``, ..."""
    if step == 0:
        return "before adaptation"
    return f"after {step} step" + ("s" if step > 1 else "")


class AdaptationView:
    """The K+1 panels on one task, stepped together, and the side-by-side picture of them.

    Panel k plays the parameters after k adaptation steps in its own env. All panels share
    the env seeds of their episodes, so where they differ, the policies differ. An episode
    that ends is shown for one more frame, then restarts.
    """

    def __init__(
        self,
        learner: Learner,
        task: Any,
        adapt_steps: int,
        episodes: int,
        seed: int = 0,
        split: str = "test",
        deterministic: bool = False,
        source: str = "",
    ) -> None:
        self.learner = learner
        self.family = learner.family
        self.adapt_steps = adapt_steps
        self.episodes = episodes
        self.seed = seed
        self.split = split
        self.deterministic = deterministic
        self.task_seed = seed
        self.envs: list[Any] = []
        self.set_task(task, source)

    @property
    def n_panels(self) -> int:
        return self.adapt_steps + 1

    @property
    def fps(self) -> int:
        """The family's ``render_fps``: one env step per frame."""
        return int(self.envs[0].metadata.get("render_fps", 30))

    def set_task(self, task: Any, source: str) -> None:
        """Adapt to ``task`` and restart every panel on it."""
        self.task = task
        self.source = source
        self.actor, self.mean_returns = adaptation_actor(
            self.learner, task, self.adapt_steps, self.episodes, self.seed
        )
        self.restart()

    def next_task(self) -> None:
        """Move on to the first task of the next held-out split seed."""
        self.task_seed += 1
        task = held_out_tasks(self.family, 1, self.task_seed, self.split)[0]
        self.set_task(task, f"{self.split} task, seed {self.task_seed}")

    def restart(self) -> None:
        """Fresh envs and action noise: every panel starts its first episode again."""
        self.close()
        self.envs = [
            self.family.make_env(self.task, render_mode="rgb_array") for _ in range(self.n_panels)
        ]
        self.actor.reset(self.seed)
        self.episode = [0] * self.n_panels
        self.returns = [0.0] * self.n_panels
        self.last_returns: list[float | None] = [None] * self.n_panels
        self.done = [False] * self.n_panels
        self.obs = [self._reset(i) for i in range(self.n_panels)]

    def _reset(self, panel: int) -> np.ndarray:
        episode_seed = int(np.random.default_rng([self.seed, self.episode[panel]]).integers(2**31))
        obs, _ = self.envs[panel].reset(seed=episode_seed)
        self.actor.start_episode(panel)
        self.returns[panel] = 0.0
        self.done[panel] = False
        return obs

    def actions(self) -> np.ndarray:
        """One action per panel from its policy: sampled, or the mode if deterministic."""
        return self.actor.act(np.stack(self.obs), self.deterministic)

    def step(self) -> None:
        """Every panel takes one step; panels whose episode had ended start the next one."""
        actions = self.actions()
        for i, env in enumerate(self.envs):
            if self.done[i]:
                self.episode[i] += 1
                self.obs[i] = self._reset(i)
                continue
            self.obs[i], reward, terminated, truncated, _ = env.step(actions[i])
            self.actor.feedback(i, float(reward), bool(terminated or truncated))
            self.returns[i] += reward
            if terminated or truncated:
                self.done[i] = True
                self.last_returns[i] = self.returns[i]

    # --- drawing ------------------------------------------------------------------------------
    def frames(self) -> list[np.ndarray]:
        """Every panel's env frame, ``[height, width, 3]`` uint8."""
        return [env.render() for env in self.envs]

    def natural_size(self, width: int | None = None) -> tuple[int, int]:
        """Size of the whole view: ``width`` wide (default: the frames' own width, capped)."""
        frame_height, frame_width = self.frames()[0].shape[:2]
        if width is None:
            width = min(self.n_panels * frame_width, MAX_WINDOW_WIDTH)
        panel_width = width // self.n_panels
        header, hud, _ = _layout(panel_width)
        return width, header + hud + round(panel_width * frame_height / frame_width)

    def draw(self, surface: Any, paused: bool = False) -> None:
        """Draw the title line and every panel (heads-up lines over the scaled frame)."""
        import pygame

        width, height = surface.get_size()
        panel_width = width // self.n_panels
        header, hud, font_size = _layout(panel_width)
        text_font = font(font_size)
        surface.fill(BACKGROUND)
        parts = [
            f"{self.learner.config.algo} on {self.family.name}",
            self.source,
            f"adapted on {self.episodes} episodes per step",
            "mean actions" if self.deterministic else "sampled actions",
            "PAUSED" if paused else "",
        ]
        title = "  |  ".join(part for part in parts if part)
        _text(surface, text_font, title, (8, 6), width - 16, TEXT)
        summary = task_summary(self.family, self.task)
        for i, frame in enumerate(self.frames()):
            left = i * panel_width
            colour = STEP_COLOURS[min(i, len(STEP_COLOURS) - 1)]
            top = header
            label = f"{step_label(i)}   (mean return {self.mean_returns[i]:.1f})"
            top += _text(surface, text_font, label, (left + 8, top), panel_width - 16, colour)
            last = "" if self.last_returns[i] is None else f"   last {self.last_returns[i]:.1f}"
            status = f"episode {self.episode[i] + 1}   return {self.returns[i]:.1f}{last}"
            top += _text(surface, text_font, status, (left + 8, top), panel_width - 16, TEXT)
            _text(surface, text_font, summary, (left + 8, top), panel_width - 16, MUTED)
            area = pygame.Rect(left + 4, header + hud, panel_width - 8, height - header - hud - 4)
            _blit_scaled(surface, frame, area)
            if i:
                pygame.draw.line(surface, DIVIDER, (left, header), (left, height), 2)

    def close(self) -> None:
        for env in self.envs:
            env.close()
        self.envs = []


def _layout(panel_width: int) -> tuple[int, int, int]:
    """Title height, heads-up height and font size for panels ``panel_width`` wide."""
    font_size = int(np.clip(panel_width // 16, 14, 22))
    line = font_size - font_size // 4 + 2
    return line + 8, 3 * line + 8, font_size


def _text(surface: Any, font: Any, text: str, at: tuple[int, int], width: int,
          colour: tuple[int, int, int]) -> int:
    """Draw ``text`` cut to ``width`` pixels; returns the line height."""
    while len(text) > 1 and font.size(text)[0] > width:
        text = text[:-2] + "~"
    surface.blit(font.render(text, True, colour), at)
    return font.get_linesize() - 2


def _blit_scaled(surface: Any, frame: np.ndarray, area: Any) -> None:
    """Scale ``frame`` to fit ``area`` (aspect kept) and draw it centred there."""
    import pygame

    image = pygame.surfarray.make_surface(np.ascontiguousarray(frame.transpose(1, 0, 2)))
    scale = min(area.width / image.get_width(), area.height / image.get_height())
    if scale <= 0:
        return
    size = (max(1, round(image.get_width() * scale)), max(1, round(image.get_height() * scale)))
    scaled = pygame.transform.smoothscale(image, size)
    surface.blit(scaled, scaled.get_rect(center=area.center))


class Window:
    """The interactive pygame window (keys: N new task, R restart, Space pause,
    S screenshot, Q/Esc quit; resizable)."""

    def __init__(self, view: AdaptationView, width: int | None = None,
                 shots: Path = Path(".")) -> None:
        import pygame

        self.view = view
        self.shots = Path(shots)
        self.paused = False
        self.running = True
        try:
            pygame.display.init()
            self.screen = pygame.display.set_mode(view.natural_size(width), pygame.RESIZABLE)
        except pygame.error as error:
            raise ConfigError(
                f"cannot open a window ({error}); use --record DIR to write frames instead"
            ) from None
        pygame.display.set_caption(f"metarl watch - {view.family.name}")
        self.clock = pygame.time.Clock()

    def handle(self, event: Any) -> None:
        """React to one pygame event."""
        import pygame

        if event.type == pygame.QUIT:
            self.running = False
        elif event.type == pygame.VIDEORESIZE:
            size = (max(event.w, 160), max(event.h, 120))
            self.screen = pygame.display.set_mode(size, pygame.RESIZABLE)
        elif event.type == pygame.KEYDOWN:
            if event.key in (pygame.K_q, pygame.K_ESCAPE):
                self.running = False
            elif event.key == pygame.K_SPACE:
                self.paused = not self.paused
            elif event.key == pygame.K_r:
                self.view.restart()
            elif event.key == pygame.K_n:
                self.view.next_task()
            elif event.key == pygame.K_s:
                print(f"saved {self.screenshot()}")

    def screenshot(self) -> Path:
        """Save what the window shows as the next free ``watch-<family>-NNN.png``."""
        import pygame

        self.shots.mkdir(parents=True, exist_ok=True)
        index = 0
        while (path := self.shots / f"watch-{self.view.family.name}-{index:03d}.png").exists():
            index += 1
        pygame.image.save(self.screen, str(path))
        return path

    def run(self, frames: int | None = None) -> None:
        """Show the view at the family's frame rate until quit (or for ``frames`` frames)."""
        import pygame

        shown = 0
        while self.running and (frames is None or shown < frames):
            for event in pygame.event.get():
                self.handle(event)
            self.view.draw(self.screen, self.paused)
            pygame.display.flip()
            self.clock.tick(self.view.fps)
            if not self.paused:
                self.view.step()
            shown += 1

    def close(self) -> None:
        import pygame

        pygame.display.quit()


def record(view: AdaptationView, out_dir: Path, frames: int, width: int | None = None) -> Path:
    """Write ``frames`` frames of the view as ``frame_NNNN.png`` and ``watch.gif`` in ``out_dir``
    (headless: no window is opened); returns the GIF's path.

    The recording is made in a temporary folder inside ``out_dir`` and replaces the previous
    one (its frames and GIF) only once complete, in a few renames that Ctrl-C and ``SIGTERM``
    wait for, so an interrupted recording leaves the previous one intact and no stale frames
    mix with new ones; the folder is locked while recording, and temporary folders a killed
    recording left are removed first. A write that fails (a full disk) ends in a one-line
    :class:`RunDirectoryError`. The GIF shares one palette across frames (taken from a few
    frames spread over the recording), so unchanged regions cost nothing from frame to frame.
    """
    import pygame
    from PIL import Image

    out_dir = Path(out_dir)
    with locked(out_dir):
        for stale in out_dir.glob(f"{RECORDING_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)
        surface = pygame.Surface(view.natural_size(width))
        try:
            with tempfile.TemporaryDirectory(dir=out_dir, prefix=RECORDING_PREFIX) as scratch:
                paths = [Path(scratch) / f"frame_{index:04d}.png" for index in range(frames)]
                for path in paths:
                    view.draw(surface)
                    pygame.image.save(surface, str(path))
                    view.step()
                samples = [Image.open(path).convert("RGB")
                           for path in paths[:: max(1, frames // 8)]]
                montage = Image.new("RGB", (samples[0].width, samples[0].height * len(samples)))
                for index, sample in enumerate(samples):
                    montage.paste(sample, (0, index * sample.height))
                palette = montage.quantize(colors=GIF_COLOURS, dither=Image.Dither.NONE)
                images = (Image.open(path).convert("RGB").quantize(
                    palette=palette, dither=Image.Dither.NONE) for path in paths)
                gif = Path(scratch) / GIF
                next(images).save(gif, save_all=True, append_images=images,
                                  duration=round(1000 / view.fps), loop=0, optimize=True)
                with uninterruptible():
                    for old in out_dir.glob("frame_*.png"):
                        old.unlink()
                    for path in paths:
                        os.replace(path, out_dir / path.name)
                    os.replace(gif, out_dir / GIF)
        except (OSError, pygame.error) as error:
            raise RunDirectoryError(f"the recording in {str(out_dir)!r} could not be written "
                                    f"({error}); the previous one is intact") from None
    return out_dir / GIF
