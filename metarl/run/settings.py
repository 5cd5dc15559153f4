"""Settings resolved in one place, for every entry point: the command line, config files,
``metarl.make``, resumed runs, sweeps, ``compare`` and ``bench``.

Settings come in layers, later ones overriding earlier ones: a config file, then the flags
or keywords given. A layer's keys are :class:`~metarl.config.TrainConfig` fields, the
learner's own options by their plain names (``max_kl``), or ``algo_options`` (a mapping of
those). The result records every setting, each learner option included with its default, so
a run's ``config.json`` says exactly how it was trained even after a default changes. A
resumed run keeps its saved settings: only :data:`CHANGEABLE_ON_RESUME` may differ. A learner
may set its own defaults for shared settings (:attr:`Learner.defaults`: VariBAD plays 256
tasks per iteration); what is given overrides them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from metarl import registry
from metarl.config import ConfigError, TrainConfig, from_dict, shown
from metarl.run.rundir import RunDirectoryError

TRAINING_SETTINGS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                          if f.name != "algo_options")
"""The settings every learner shares."""
CHANGEABLE_ON_RESUME = ("iterations", "device")
"""The settings a resumed run may change (raising its target, moving it to another device)."""


def option_names(algo: str) -> tuple[str, ...]:
    """The options of learner ``algo``, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(registry.get_learner(algo).Options))


def resolve_settings(*layers: Mapping[str, Any]) -> TrainConfig:
    """One checked :class:`TrainConfig` from ``layers`` of settings (see the module docstring);
    an unknown name is a :class:`ConfigError` listing the valid ones."""
    settings: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for layer in layers:
        if not isinstance(layer, Mapping):
            raise ConfigError(f"settings must be a JSON object or mapping, got {shown(layer)}")
        for key, value in layer.items():
            if key == "algo_options":
                if not isinstance(value, Mapping):
                    raise ConfigError(f"algo_options must be a JSON object, got {shown(value)}")
                options.update(value)
            elif key in TRAINING_SETTINGS:
                settings[key] = value
            else:
                options[key] = value
    algo = settings.get("algo", TrainConfig.algo)
    if not isinstance(algo, str):
        raise ConfigError(f"--algo must be a learner's name, got {shown(algo)}")
    names = option_names(algo)
    unknown = sorted(shown(key, 40).strip("'") for key in options if key not in names)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''} "
            f"for algo {algo!r}; training settings: "
            f"{', '.join(TRAINING_SETTINGS)}; {algo} options: {', '.join(names) or 'none'}"
        )
    learner_class = registry.get_learner(algo)
    learner_options = from_dict(learner_class.Options, options, what=f"{algo} option")
    return from_dict(TrainConfig, {**learner_class.defaults, **settings,
                                   "algo_options": dataclasses.asdict(learner_options)})


def resumed_settings(saved: TrainConfig, changes: Mapping[str, Any]) -> TrainConfig:
    """A saved run's settings with ``changes`` (what was given on resuming) applied: only
    :data:`CHANGEABLE_ON_RESUME` may differ from the run's (a run saved before options were
    recorded in full gets today's defaults for the ones it lacks)."""
    current = resolve_settings(saved.to_json())
    requested = resolve_settings(saved.to_json(), changes)
    before, after = flat_settings(current), flat_settings(requested)
    changed = [key for key in after if key not in CHANGEABLE_ON_RESUME
               and after[key] != before[key]]
    if changed:
        flags = ", ".join(f"--{key.replace('_', '-')} {shown(after[key])} (the run has "
                          f"{shown(before[key])})" for key in changed)
        raise RunDirectoryError(f"a resumed run keeps its settings, but {flags}; drop the "
                                "flag or start a new run with another --out")
    return requested


def flat_settings(config: TrainConfig) -> dict[str, Any]:
    """Every setting by its plain name: the training settings, then the learner's options."""
    data = config.to_json()
    return {**{key: data[key] for key in TRAINING_SETTINGS}, **data["algo_options"]}
