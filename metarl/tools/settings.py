"""Every training setting and every learner's options, listed from the code that declares
them (``metarl settings``; the README's list is this module's Markdown, and a test keeps the
two equal)."""

from __future__ import annotations

import dataclasses
from typing import Any

from metarl import registry
from metarl.config import TrainConfig


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory()  # type: ignore[operator]


def _rows(cls: type, skip: tuple[str, ...] = ()) -> list[tuple[str, str, str]]:
    """(name, default, help) of every field of dataclass ``cls``."""
    rows = []
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        default = _default(field)
        shown = list(default) if isinstance(default, tuple) else default
        text = str(field.metadata.get("help", "")).replace("|", "\\|")
        choices = [str(choice) for choice in field.metadata.get("choices", ())]
        if choices and not all(choice in text for choice in choices):
            text += f" (one of: {', '.join(choices)})"
        rows.append((field.name, repr(shown) if isinstance(shown, str) else str(shown), text))
    return rows


def settings_markdown(algos: list[str] | None = None) -> str:
    """Markdown tables: the training settings every learner shares, then each learner's own
    options (``algos``, default every registered learner). Names are ``metarl.make``
    keywords and config-file keys; the flag is the name with dashes (``--max-kl``)."""
    names = registry.learner_names() if algos is None else algos
    lines = ["**Training settings** (every learner):", "",
             "| setting | default | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | `{default}` | {text} |"
              for name, default, text in _rows(TrainConfig, skip=("algo_options",))]
    for algo in names:
        learner = registry.get_learner(algo)
        rows = _rows(learner.Options)
        own = "".join(f" `{key}` {list(value) if isinstance(value, tuple) else value!r};"
                      for key, value in learner.defaults.items())
        lines += ["", f"**`{algo}` options**" + ("" if rows else ": none")
                  + (f" (its own defaults:{own.rstrip(';')})" if own else "")
                  + ("" if not rows else ":")]
        if rows:
            lines += ["", "| option | default | meaning |", "|---|---|---|"]
            lines += [f"| `{name}` | `{default}` | {text} |" for name, default, text in rows]
    return "\n".join(lines) + "\n"
