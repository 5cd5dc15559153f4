"""TensorBoard event files of a run: every metrics column per iteration, and evaluations.

Optional: needs the ``tensorboard`` package (``pip install -e ".[tensorboard]"``). Files go
to ``RUN/tensorboard``; ``tensorboard --logdir RUN/tensorboard`` shows the curves while a run
goes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metarl.config import ConfigError
from metarl.run.rundir import RunDirectoryError

FOLDER = "tensorboard"


class TensorBoardLog:
    """A run's TensorBoard writer. Steps are meta-iterations; a resumed run first drops the
    events logged past its checkpoint (``first_step``)."""

    def __init__(self, run_dir: Path, first_step: int = 1) -> None:
        from torch.utils.tensorboard import SummaryWriter

        folder = Path(run_dir) / FOLDER
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise RunDirectoryError(f"{str(folder)!r} is not a folder of the run (a link or a "
                                    "file); remove it to log to TensorBoard")
        self.writer = SummaryWriter(str(folder), purge_step=first_step)

    @staticmethod
    def check_available() -> None:
        """Raise :class:`ConfigError` with the install command when tensorboard is missing."""
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise ConfigError("--tensorboard needs the tensorboard package: "
                              "pip install -e '.[tensorboard]'") from None

    def metrics(self, row: dict[str, float]) -> None:
        """One metrics row (its ``iteration`` is the step)."""
        step = int(row["iteration"])
        for key, value in row.items():
            if key != "iteration":
                self.writer.add_scalar(f"metrics/{key}", value, step)
        self.writer.flush()

    def evaluation(self, result: Any, iteration: int) -> None:
        """An evaluation's mean return and 95% interval after each adaptation step, at the
        run's iteration."""
        for k, mean, low, high in zip(result.adapt_steps, result.mean_return, result.ci95_low,
                                      result.ci95_high, strict=True):
            values = [("mean", mean), ("ci95_low", low), ("ci95_high", high)]
            if result.success_rate is not None:
                values.append(("success_rate", result.success_rate[k]))
            for name, value in values:
                self.writer.add_scalar(f"evaluation/{result.split}/after_{k}_steps/{name}",
                                       value, iteration)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
