import os
from pathlib import Path

import pytest
from tiny_runs import TINY

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


SLOW_TIMEOUT_SECONDS = 1800
"""Learning tests train for minutes; on two shared cores one can take three times as long."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_SECONDS))


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One iteration of navigation2d MAML (:data:`tiny_runs.TINY`), trained once per module."""
    from metarl.cli import main  # after the SDL settings above

    run = tmp_path_factory.mktemp("good") / "run"
    assert main(["train", "--out", str(run), "--iterations", "1", *TINY]) == 0
    return run
