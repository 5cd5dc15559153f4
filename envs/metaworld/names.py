"""The Meta-World families' names, known without Meta-World installed (so that they can be
listed as unavailable with the install command). A test checks them against Meta-World's."""

from __future__ import annotations

ML1_ENVS = (
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3",
    "button-press-topdown-v3", "button-press-topdown-wall-v3", "button-press-v3",
    "button-press-wall-v3", "coffee-button-v3", "coffee-pull-v3", "coffee-push-v3",
    "dial-turn-v3", "disassemble-v3", "door-close-v3", "door-lock-v3", "door-open-v3",
    "door-unlock-v3", "hand-insert-v3", "drawer-close-v3", "drawer-open-v3", "faucet-open-v3",
    "faucet-close-v3", "hammer-v3", "handle-press-side-v3", "handle-press-v3",
    "handle-pull-side-v3", "handle-pull-v3", "lever-pull-v3", "pick-place-wall-v3",
    "pick-out-of-hole-v3", "pick-place-v3", "plate-slide-v3", "plate-slide-side-v3",
    "plate-slide-back-v3", "plate-slide-back-side-v3", "peg-insert-side-v3",
    "peg-unplug-side-v3", "soccer-v3", "stick-push-v3", "stick-pull-v3", "push-v3",
    "push-wall-v3", "push-back-v3", "reach-v3", "reach-wall-v3", "shelf-place-v3",
    "sweep-into-v3", "sweep-v3", "window-open-v3", "window-close-v3",
)
"""Meta-World's 50 v3 environments, in its order (``metaworld.ML1.ENV_NAMES``)."""


def ml1_name(env: str) -> str:
    """The family of one ML1 environment: ``"reach-v3"`` -> ``"ml1-reach"``."""
    return "ml1-" + env.removesuffix("-v3")


def ml1_env_id(env: str) -> str:
    """Its Gymnasium id: ``"reach-v3"`` -> ``"metarl/ML1-reach-v0"``."""
    return f"metarl/ML1-{env.removesuffix('-v3')}-v0"


FAMILY_NAMES = (*(ml1_name(env) for env in ML1_ENVS), "ml10", "ml45")
"""Every Meta-World family: ``ml1-<env>`` for each environment, ``ml10`` and ``ml45``."""
