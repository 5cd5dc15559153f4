"""Frames of a MuJoCo scene from MuJoCo's own offscreen renderer, with no display.

MuJoCo renders through OpenGL; on a machine without a screen the context comes from EGL
(Mesa's software rasteriser will do: Debian's ``libegl1``, ``libegl-mesa0`` and
``libgl1-mesa-dri``) or OSMesa (``libosmesa6``). ``MUJOCO_GL=egl`` or ``MUJOCO_GL=osmesa``
picks one; unset, EGL is tried, then OSMesa. Without either, :class:`OffscreenRenderer`
raises :class:`RenderError` with one line naming the fix.

MuJoCo's own ``mujoco.Renderer`` picks its context when ``mujoco`` is first imported, from
``MUJOCO_GL`` as it was then (GLFW, which needs a display, when unset), so this module makes
its own context instead.
"""

from __future__ import annotations

import atexit
import os
import weakref
from typing import Any

import mujoco
import numpy as np

FIX = ("install Debian's libegl1 libegl-mesa0 libgl1-mesa-dri and set MUJOCO_GL=egl, or "
       "libosmesa6 and MUJOCO_GL=osmesa")


class RenderError(RuntimeError):
    """No OpenGL context could be made for MuJoCo's offscreen renderer."""


_LIVE: weakref.WeakSet[OffscreenRenderer] = weakref.WeakSet()
_closing_at_exit = False


def _close_live_renderers() -> None:
    for renderer in list(_LIVE):
        renderer.close()


def _gl_context(width: int, height: int) -> Any:
    wanted = os.environ.get("MUJOCO_GL", "").strip().lower()
    backends = [wanted] if wanted else ["egl", "osmesa"]
    failures = []
    for backend in backends:
        try:
            if backend == "egl":
                from mujoco.egl import GLContext
            elif backend == "osmesa":
                from mujoco.osmesa import GLContext
            elif backend in ("glfw", "glx"):
                from mujoco.glfw import GLContext
            else:
                raise RenderError(f"unknown MUJOCO_GL={wanted!r}; use egl or osmesa")
            context = GLContext(width, height)
            context.make_current()
            global _closing_at_exit
            if not _closing_at_exit:  # registered after the GL library's own exit handler,
                atexit.register(_close_live_renderers)  # so it runs before it
                _closing_at_exit = True
            return context
        except Exception as error:  # any failure to make a context: try the next
            failures.append(f"{backend}: {type(error).__name__}: {error}".strip())
    raise RenderError(f"MuJoCo cannot render offscreen here ({'; '.join(failures)}): {FIX}")


class OffscreenRenderer:
    """Renders ``model``'s scene at a ``data`` from a named camera (default: a free camera),
    ``[height, width, 3]`` uint8 frames (row 0 at the top).

    Without a GPU, Mesa draws in software, where shadows, reflections and multisampling cost
    the most: a 480 x 480 Meta-World frame takes about 0.5 s with them and 0.05 s without, so
    they are off unless asked for (``samples`` sets the model's ``vis.quality.offsamples``).
    """

    def __init__(self, model: mujoco.MjModel, width: int, height: int,
                 camera: str | None = None, shadows: bool = False, reflections: bool = False,
                 samples: int = 0) -> None:
        offscreen = model.vis.global_
        if width > offscreen.offwidth or height > offscreen.offheight:
            raise ValueError(f"frame {width}x{height} is larger than the model's offscreen "
                             f"buffer {offscreen.offwidth}x{offscreen.offheight}")
        self.model = model
        self.width, self.height = width, height
        self._context = _gl_context(width, height)
        model.vis.quality.offsamples = samples
        self._mjr = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._mjr)
        self._scene = mujoco.MjvScene(model, maxgeom=10_000)
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = shadows
        self._scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = reflections
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        if camera is None:
            self._camera.type = mujoco.mjtCamera.mjCAMERA_FREE
            mujoco.mjv_defaultFreeCamera(model, self._camera)
        else:
            self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
            self._camera.fixedcamid = model.camera(camera).id
        self._viewport = mujoco.MjrRect(0, 0, width, height)
        self._pixels = np.empty((height, width, 3), dtype=np.uint8)
        _LIVE.add(self)

    @property
    def camera(self) -> mujoco.MjvCamera:
        """The camera (a free camera's ``lookat``, ``distance``, ``azimuth``, ``elevation``
        may be set)."""
        return self._camera

    def render(self, data: mujoco.MjData) -> np.ndarray:
        self._context.make_current()
        mujoco.mjv_updateScene(self.model, data, self._option, None, self._camera,
                               mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        mujoco.mjr_render(self._viewport, self._scene, self._mjr)
        mujoco.mjr_readPixels(self._pixels, None, self._viewport, self._mjr)
        return np.flipud(self._pixels).copy()

    def close(self) -> None:
        """Free the OpenGL context (idempotent; errors at interpreter exit are ignored)."""
        context, self._context = getattr(self, "_context", None), None
        if context is None:
            return
        try:
            self._mjr.free()
            context.free()
        except Exception:  # the GL library may already be torn down at exit
            pass

    def __del__(self) -> None:
        self.close()
