"""Helpers for the families' pygame drawings and the viewer (pygame is imported lazily)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

_FONTS: dict[int, Any] = {}


def font(size: int) -> Any:
    """pygame's default font at ``size`` pixels, loaded once per font-module session."""
    import pygame

    if not pygame.font.get_init():
        pygame.font.init()
        _FONTS.clear()
    if size not in _FONTS:
        _FONTS[size] = pygame.font.Font(None, size)
    return _FONTS[size]


class CanvasWindow:
    """A Gymnasium env's ``render()`` for envs that draw themselves onto a pygame canvas of
    ``render_size`` (``draw(canvas)``): an RGB array in ``rgb_array`` mode, a window kept
    open between calls in ``human`` mode (closed by :meth:`close_window`)."""

    render_mode: str | None
    render_size: tuple[int, int]
    metadata: dict[str, Any]
    family: Any
    _window: Any = None
    _clock: Any = None

    def set_render_mode(self, render_mode: str | None) -> None:
        """Keep ``render_mode`` (``None`` or one of ``metadata["render_modes"]``)."""
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode {render_mode!r} is not one of {self.metadata['render_modes']}"
            )
        self.render_mode = render_mode

    def draw(self, canvas: Any) -> None:
        """Draw the current state onto a ``pygame.Surface`` of size :attr:`render_size`."""
        raise NotImplementedError(f"{type(self).__name__} must implement draw(canvas)")

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn(
                f"render() called without a render_mode; use gymnasium.make({self.family.env_id!r}"
                ", render_mode='rgb_array')"
            )
            return None
        import pygame

        canvas = pygame.Surface(self.render_size)
        self.draw(canvas)
        if self.render_mode == "rgb_array":
            return np.transpose(pygame.surfarray.array3d(canvas), (1, 0, 2))
        if self._window is None:
            pygame.init()
            pygame.display.init()
            pygame.display.set_caption(self.family.env_id)
            self._window = pygame.display.set_mode(self.render_size)
            self._clock = pygame.time.Clock()
        self._window.blit(canvas, (0, 0))
        pygame.event.pump()
        pygame.display.flip()
        self._clock.tick(self.metadata["render_fps"])
        return None

    def close_window(self) -> None:
        """Close the ``human`` window, if one is open."""
        if self._window is not None:
            import pygame

            pygame.display.quit()
            self._window = None
