"""Registries of task families and meta-learners, filled by plugins.

Modules listed under the ``metarl.plugins`` entry-point group are imported on ``import
metarl`` (and on first lookup); each calls :func:`register_family` or
:func:`register_learner` at import. A plugin that fails to import is skipped with a one-line
warning naming its entry point. A third-party package either lists its module in that group
or calls the functions itself; a user's own module or file is loaded with
:func:`load_user_module` (``metarl --import ...``) or :func:`load_family` (``--family
path:Class``). Names are all a run directory or checkpoint ever holds: nothing is imported
because a file says so.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import warnings
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym

from metarl.config import ConfigError
from metarl.family.base import TaskFamily
from metarl.family.tracebacks import describe

FamilyFactory = Callable[[], TaskFamily]

_FAMILIES: dict[str, FamilyFactory] = {}
_LEARNERS: dict[str, type] = {}
_UNAVAILABLE: dict[str, str] = {}
"""Families that cannot load here, with the reason (e.g. an optional dependency)."""
_plugins_loaded = False


BUILTIN_PLUGINS = ("metarl.envs", "metarl.agents")
"""The built-in families and learners: loaded first, so no plugin can take their names."""


def load_plugins() -> None:
    """Import the built-in families and learners, then every module registered under the
    ``metarl.plugins`` entry-point group (once). A plugin that fails to import (an exception,
    ``sys.exit``, even a ``KeyboardInterrupt`` raised by its code) or that registers a name
    already taken is skipped with a one-line warning naming its entry point."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for module in BUILTIN_PLUGINS:
        importlib.import_module(module)
    for entry_point in entry_points(group="metarl.plugins"):
        if entry_point.value in BUILTIN_PLUGINS:
            continue
        try:
            entry_point.load()
        except BaseException as error:  # a broken plugin must not take every command down
            reason = (f"{type(error).__name__} at import" if isinstance(
                error, SystemExit | KeyboardInterrupt) else describe(error))
            warnings.warn(f"metarl plugin {entry_point.name!r} ({entry_point.value}) was "
                          f"skipped: {reason}", stacklevel=2)


def load_user_module(spec: str) -> ModuleType:
    """Import a user's module, by dotted name or as a ``.py`` file path; its registrations
    take effect. Errors in the module come back as one :class:`ConfigError` line with the
    file and line they happened at."""
    path = Path(spec)
    try:
        if spec.endswith(".py"):
            if not path.is_file():
                raise ConfigError(f"no Python file {spec!r}")
            # Under a name of its own: a file called json.py or torch.py must not take the
            # place of the module of that name for the rest of the process.
            name = f"{USER_MODULES}.{_identifier(str(path.resolve()))}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
            return module
        return importlib.import_module(spec)
    except ConfigError:
        raise
    except ModuleNotFoundError as error:
        raise ConfigError(f"cannot import {spec!r}: {error}; give a module on the Python path "
                          "or a path to a .py file") from None
    except Exception as error:
        raise ConfigError(f"importing {spec!r} failed: {describe(error)}") from None


USER_MODULES = "metarl_user_modules"
"""The namespace ``.py`` files given on the command line are imported under."""


def _identifier(text: str) -> str:
    """``text`` as a module name: every other character an underscore."""
    return "".join(c if c.isalnum() else "_" for c in text)


def load_family(spec: str) -> TaskFamily:
    """The family ``MODULE:ATTRIBUTE`` or ``FILE.py:ATTRIBUTE`` names (a class or an
    instance), registered under its own name if it is not yet, so that a run directory can
    name it."""
    module_name, _, attribute = spec.rpartition(":")
    if not module_name or not attribute:
        raise ConfigError(f"--family {spec!r} must be a registered name or MODULE:Class "
                          "(or path/to/file.py:Class)")
    module = load_user_module(module_name)
    if not hasattr(module, attribute):
        raise ConfigError(f"{module_name!r} has no attribute {attribute!r}")
    obj = getattr(module, attribute)
    try:
        family = obj() if isinstance(obj, type) else obj
    except Exception as error:
        raise ConfigError(f"building {spec!r} failed: {describe(error)}") from None
    name = getattr(family, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{spec!r} has no family name: set the class attribute 'name'")
    if name not in _FAMILIES:
        register_family(name, type(family) if isinstance(obj, type) else (lambda: family))
    return get_family(name)


def register_family(name: str, factory: FamilyFactory, **kwargs: Any) -> None:
    """Register a family under ``name``; ``factory(**kwargs)`` builds it.

    Also registers the family's Gymnasium id (``factory.env_id`` for a class, else the built
    family's), so ``gymnasium.make(env_id, task=...)`` works.
    """
    if name in _FAMILIES:
        raise ValueError(f"a task family named {name!r} is already registered; choose "
                         "another name")
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
    """The registered family ``name`` (never a module path: see :func:`load_family`)."""
    load_plugins()
    if name in _UNAVAILABLE and name not in _FAMILIES:
        raise ConfigError(f"task family {name!r} {_UNAVAILABLE[name]}")
    if name not in _FAMILIES:
        raise ConfigError(
            f"unknown task family {name!r}; registered: {', '.join(family_names())} (a "
            "family of your own: `metarl --import MODULE_OR_FILE ...` or the metarl.plugins "
            "entry points)"
        )
    return _FAMILIES[name]()


def family_names() -> list[str]:
    load_plugins()
    return sorted(_FAMILIES)


def register_learner(name: str) -> Callable[[type], type]:
    """Class decorator registering a learner (a :class:`metarl.learn.learner.Learner`
    subclass) under ``name``."""

    def decorator(cls: Any) -> Any:
        if name in _LEARNERS:
            raise ValueError(f"a learner named {name!r} is already registered")
        _LEARNERS[name] = cls
        cls.name = name
        return cls

    return decorator


def get_learner(name: str) -> Any:
    """The learner class registered as ``name`` (a :class:`metarl.learn.learner.Learner`
    subclass; typed loosely, as the registry sits below the learner protocol)."""
    load_plugins()
    if name not in _LEARNERS:
        raise ConfigError(
            f"unknown algorithm {name!r}; registered: {', '.join(learner_names())}"
        )
    return _LEARNERS[name]


def learner_names() -> list[str]:
    load_plugins()
    return sorted(_LEARNERS)
