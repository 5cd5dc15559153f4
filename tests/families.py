"""Which registered families the tests that run over every family take."""

from metarl import registry

META_WORLD_REPRESENTATIVE = "ml1-reach"


def conformance_families(meta_world: bool = True) -> list[str]:
    """Every registered family, with Meta-World's 52 represented by ``ml1-reach`` alone
    (none with ``meta_world=False``, for tests that train): they share one implementation,
    an episode is 500 steps of a slow simulator, and ML10's and ML45's goals take seconds to
    a minute to build. tests/test_family_metaworld.py covers the rest (and the checker on
    ``ml1-reach``)."""
    ours = {name for name in registry.family_names()
            if name.startswith("ml1-") or name in ("ml10", "ml45")}
    return [name for name in registry.family_names()
            if name not in ours or (meta_world and name == META_WORLD_REPRESENTATIVE)]
