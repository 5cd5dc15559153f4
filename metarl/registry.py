"""Registries of task families and meta-learners, filled by plugins.

Modules listed under the ``metarl.plugins`` entry-point group are imported on first lookup;
each calls :func:`register_family` or :func:`register_learner` at import. A third-party
package either lists its module in that group or calls the functions itself.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import gymnasium as gym

from metarl.config import ConfigError
from metarl.family.base import TaskFamily

FamilyFactory = Callable[[], TaskFamily]

_FAMILIES: dict[str, FamilyFactory] = {}
_LEARNERS: dict[str, type] = {}
_UNAVAILABLE: dict[str, str] = {}
"""Families that cannot load here, with the reason (e.g. an optional dependency)."""
_plugins_loaded = False


def load_plugins() -> None:
    """Import every module registered under the ``metarl.plugins`` entry-point group (once)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry_point in entry_points(group="metarl.plugins"):
        entry_point.load()


def register_family(name: str, factory: FamilyFactory, **kwargs: Any) -> None:
    """Register a family under ``name``; ``factory(**kwargs)`` builds it.

    Also registers the family's Gymnasium id (``factory.env_id`` for a class, else the built
    family's), so ``gymnasium.make(env_id, task=...)`` works.
    """
    if name in _FAMILIES:
        raise ValueError(f"a task family named {name!r} is already registered")
    build = functools.partial(factory, **kwargs) if kwargs else factory
    _FAMILIES[name] = build
    env_id = getattr(factory, "env_id", None) if not kwargs else None
    family = None
    if env_id is None:
        family = build()
        env_id = family.env_id
    if env_id not in gym.registry:
        gym.register(
            id=env_id,
            entry_point=functools.partial(_make_env, name),
            max_episode_steps=(family or build()).max_episode_steps,
        )


def register_unavailable(names: tuple[str, ...], reason: str) -> None:
    """List ``names`` as families that cannot be used here, and why (say how to fix it)."""
    for name in names:
        _UNAVAILABLE.setdefault(name, reason)


def unavailable_families() -> dict[str, str]:
    """Families listed as unavailable, with the reason, by name."""
    load_plugins()
    return {name: reason for name, reason in _UNAVAILABLE.items() if name not in _FAMILIES}


def _make_env(name: str, task: Any = None, render_mode: str | None = None) -> gym.Env:
    return get_family(name).make_unlimited_env(task, render_mode=render_mode)


@functools.cache
def get_family(name: str) -> TaskFamily:
    """The registered family ``name``, or ``module.path:Attribute`` to load one directly."""
    if ":" in name:
        module, _, attribute = name.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as error:
            raise ConfigError(f"cannot load task family {name!r}: {error}") from None
        return obj() if isinstance(obj, type) else obj
    load_plugins()
    if name in _UNAVAILABLE and name not in _FAMILIES:
        raise ConfigError(f"task family {name!r} {_UNAVAILABLE[name]}")
    if name not in _FAMILIES:
        raise ConfigError(
            f"unknown task family {name!r}; registered: {', '.join(family_names())}"
        )
    return _FAMILIES[name]()


def family_names() -> list[str]:
    load_plugins()
    return sorted(_FAMILIES)


def register_learner(name: str) -> Callable[[type], type]:
    """Class decorator registering a meta-learner under ``name``."""

    def decorator(cls: type) -> type:
        if name in _LEARNERS:
            raise ValueError(f"a learner named {name!r} is already registered")
        _LEARNERS[name] = cls
        cls.name = name
        return cls

    return decorator


def get_learner(name: str) -> type:
    load_plugins()
    if name not in _LEARNERS:
        raise ConfigError(
            f"unknown algorithm {name!r}; registered: {', '.join(learner_names())}"
        )
    return _LEARNERS[name]


def learner_names() -> list[str]:
    load_plugins()
    return sorted(_LEARNERS)
