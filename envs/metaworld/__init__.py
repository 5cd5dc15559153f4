"""Meta-World's meta-learning benchmarks as task families: ``ml1-<env>`` for each of its 50
environments (``ml1-reach``, ``ml1-push``, ``ml1-pick-place``, ...), ``ml10`` and ``ml45``.

Needs the optional extra ``[metaworld]`` (``metaworld==3.1.1``, which pins ``mujoco==3.3.0``
exactly: every Meta-World environment fails to build on MuJoCo 4). Without Meta-World, with
another MuJoCo, or when Meta-World fails to import, the families are listed as unavailable
with the reason and the fix.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

from metarl.envs.metaworld.names import FAMILY_NAMES, ML1_ENVS, ml1_env_id, ml1_name
from metarl.family.tracebacks import describe
from metarl.registry import register_family, register_unavailable

MUJOCO_VERSION = "3.3.0"
"""The MuJoCo that Meta-World 3.1.1 requires."""
INSTALL = ("pip install -e '.[metaworld]' in an environment of its own (make .venv-mw), "
           "since it pins mujoco==3.3.0")
GL_FIX = ("install Debian's libegl1 libegl-mesa0 libgl1-mesa-dri for MUJOCO_GL=egl, or "
          "libosmesa6 for MUJOCO_GL=osmesa")

__all__ = ["FAMILY_NAMES", "ML1_ENVS", "ml1_env_id", "ml1_name"]


def _installed(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _why_unavailable() -> str | None:
    """None if the families can load here, else why not and how to fix it."""
    if _installed("metaworld") is None:
        return f"needs Meta-World: {INSTALL}"
    if _installed("mujoco") != MUJOCO_VERSION:
        return (f"needs mujoco=={MUJOCO_VERSION} (Meta-World's pin), found "
                f"{_installed('mujoco')}: {INSTALL}")
    try:
        import metaworld  # noqa: F401
    except Exception as error:  # e.g. MUJOCO_GL naming an OpenGL library that is missing
        gl = os.environ.get("MUJOCO_GL")
        hint = f" (MUJOCO_GL={gl}: {GL_FIX})" if gl else ""
        return f"importing Meta-World failed: {describe(error)}{hint}"
    return None


_reason = _why_unavailable()
if _reason is not None:
    register_unavailable(FAMILY_NAMES, _reason)
else:
    from metarl.envs.metaworld.family import (
        ML1,
        ML10,
        ML45,
        MetaWorldFamily,
        MetaWorldTask,
    )

    for _env in ML1_ENVS:
        register_family(ml1_name(_env), ML1, env=_env)
    register_family(ML10.name, ML10)
    register_family(ML45.name, ML45)
    __all__ += ["ML1", "ML10", "ML45", "MetaWorldFamily", "MetaWorldTask"]
