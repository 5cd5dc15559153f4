"""Pygame pictures of MuJoCo robots: a side or top projection of the model's own geoms.

The geoms' world poses come from ``mj_kinematics`` at the drawn state; capsules become thick
round-ended lines and spheres discs, drawn far to near. No OpenGL context is needed (MuJoCo's
own renderer needs EGL, OSMesa or a display), and the flat colours suit the viewer's GIFs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import mujoco
import numpy as np

from metarl.family.drawing import font

BACKGROUND = (246, 246, 242)
GROUND = (205, 200, 185)
GRID = (222, 222, 214)
INK = (30, 30, 35)
MUTED = (115, 115, 125)
TARGET = (40, 150, 60)
ACHIEVED = (40, 90, 200)
ARROW = (220, 120, 30)
BODY_NEAR = np.array([150, 95, 55])
BODY_FAR = np.array([215, 180, 140])

Point = tuple[float, float]


def text(canvas: Any, message: str, at: tuple[int, int], size: int = 22,
         colour: tuple[int, int, int] = INK) -> None:
    canvas.blit(font(size).render(message, True, colour), at)


def arrow(canvas: Any, start: Point, end: Point, colour: tuple[int, int, int] = ARROW,
          width: int = 5, head: int = 14) -> None:
    """A straight arrow from ``start`` to ``end`` (pixels)."""
    import pygame

    dx, dy = end[0] - start[0], end[1] - start[1]
    length = math.hypot(dx, dy)
    if length < 1:
        return
    ux, uy = dx / length, dy / length
    base = (end[0] - head * ux, end[1] - head * uy)
    pygame.draw.line(canvas, colour, start, base, width)
    left = (base[0] - 0.6 * head * uy, base[1] + 0.6 * head * ux)
    right = (base[0] + 0.6 * head * uy, base[1] - 0.6 * head * ux)
    pygame.draw.polygon(canvas, colour, [end, left, right])


def robot(canvas: Any, model: mujoco.MjModel, data: mujoco.MjData, axes: tuple[int, int],
          to_pixels: Callable[[np.ndarray], Point], scale: float) -> None:
    """Project the robot's geoms onto world ``axes`` (e.g. ``(0, 2)``: x right, z up).

    The remaining axis is depth: geoms further along it are drawn first and lighter.
    """
    import pygame

    depth_axis = 3 - sum(axes)
    shapes = []
    for geom in range(model.ngeom):
        kind = model.geom_type[geom]
        if kind == mujoco.mjtGeom.mjGEOM_PLANE:
            continue
        centre = data.geom_xpos[geom]
        radius = float(model.geom_size[geom, 0])
        if kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
            axis = data.geom_xmat[geom].reshape(3, 3)[:, 2] * model.geom_size[geom, 1]
            ends = (centre - axis, centre + axis)
        else:
            ends = (centre, centre)
        shapes.append((float(centre[depth_axis]), ends, radius))
    if not shapes:
        return
    depths = np.array([shape[0] for shape in shapes])
    near, far = depths.max(), depths.min()
    if depth_axis == 2:  # top view: higher is nearer the viewer
        order = np.argsort(depths)
    else:  # side view: the camera looks along +y, so smaller y is nearer
        order = np.argsort(-depths)
        near, far = far, near
    for index in order:
        depth, (a, b), radius = shapes[index]
        blend = 0.0 if near == far else (depth - near) / (far - near)
        colour = tuple(int(c) for c in BODY_NEAR + blend * (BODY_FAR - BODY_NEAR))
        width = max(2, int(round(2 * radius * scale)))
        start, end = to_pixels(a[list(axes)]), to_pixels(b[list(axes)])
        if start != end:
            pygame.draw.line(canvas, colour, start, end, width)
        for point in (start, end):
            pygame.draw.circle(canvas, colour, point, width // 2)


def strip_chart(canvas: Any, rect: tuple[int, int, int, int], values: Sequence[float],
                horizon: int, low: float, high: float, label: str,
                target: float | None = None, rewarded: tuple[float, float] | None = None
                ) -> None:
    """A time series (``values`` per step, x axis ``0..horizon``) with an optional dashed
    ``target`` line and a shaded ``rewarded`` band of values."""
    import pygame

    left, top, width, height = rect
    pygame.draw.rect(canvas, (255, 255, 255), rect)

    def to_y(value: float) -> float:
        clipped = min(max(value, low), high)
        return top + height - (clipped - low) / (high - low) * height

    if rewarded is not None:
        band_top, band_bottom = to_y(rewarded[1]), to_y(rewarded[0])
        pygame.draw.rect(canvas, (226, 242, 228),
                         (left, band_top, width, band_bottom - band_top))
    pygame.draw.rect(canvas, GRID, rect, 1)

    if low < 0 < high:
        pygame.draw.line(canvas, GRID, (left, to_y(0.0)), (left + width, to_y(0.0)), 1)
    for tick in (low, high):
        text(canvas, f"{tick:+g}", (left + 3, int(to_y(tick)) - (0 if tick == high else 12)),
             16, MUTED)
    if target is not None:
        y = to_y(target)
        for x in range(left, left + width, 12):
            pygame.draw.line(canvas, TARGET, (x, y), (min(x + 6, left + width), y), 2)
        text(canvas, "target", (left + width - 46, int(y) + 3), 17, TARGET)
    if len(values) > 1:
        points = [
            (left + width * step / horizon, to_y(value)) for step, value in enumerate(values)
        ]
        pygame.draw.lines(canvas, ACHIEVED, False, points, 2)
    text(canvas, label, (left + width - font(17).size(label)[0] - 4, top + 3), 17, MUTED)
