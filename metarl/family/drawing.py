"""Helpers for the families' pygame drawings and the viewer (pygame is imported lazily)."""

from __future__ import annotations

from typing import Any

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
