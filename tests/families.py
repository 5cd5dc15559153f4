"""Which registered families the tests that run over every family take."""

from metarl import registry

META_WORLD_REPRESENTATIVE = "ml1-reach"


def conformance_families() -> list[str]:
    """Every registered family, with Meta-World's 52 represented by ``ml1-reach`` alone:
    they share one implementation, an episode is 500 steps of a slow simulator, and ML10's
    and ML45's goals take seconds to a minute to build. tests/test_family_metaworld.py
    covers the rest (and the checker on ``ml1-reach``)."""
    meta_world = {name for name in registry.family_names()
                  if name.startswith("ml1-") or name in ("ml10", "ml45")}
    return [name for name in registry.family_names()
            if name not in meta_world or name == META_WORLD_REPRESENTATIVE]
