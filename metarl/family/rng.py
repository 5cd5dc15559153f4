"""Counter-based random numbers for batched environments.

Every column of a batched env owns a 64-bit key; each draw hashes (key, counter, index) with
SplitMix64. Draws are pure array code over the batch, and column ``i`` of a batch seeded with
``seed`` produces exactly the numbers of a single env seeded with ``seed + i`` (the Gymnasium
convention for vector envs). That is what lets a natively batched family agree bit for bit with
the generic fallback over single envs.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_COUNTER = np.uint64(0xD1B54A32D192ED03)
_TO_UNIT = 1.0 / float(1 << 53)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser, element-wise on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


class BatchRNG:
    """Independent random streams, one per batch column, advanced in lockstep.

    ``keys`` has shape ``[B]``; every draw returns an array with leading dimension ``B``.
    """

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = splitmix64(np.asarray(keys, dtype=np.uint64).reshape(-1))
        self.counter = 0

    @classmethod
    def from_seed(cls, seed: int, batch_size: int) -> BatchRNG:
        """Column ``i`` gets the stream of a single env seeded with ``seed + i``."""
        return cls(np.uint64(seed) + np.arange(batch_size, dtype=np.uint64))

    @property
    def batch_size(self) -> int:
        return self.keys.shape[0]

    def bits(self, size: tuple[int, ...] = ()) -> np.ndarray:
        """Uniform uint64 words of shape ``[B, *size]``."""
        self.counter += 1
        n = int(np.prod(size, dtype=np.int64))
        index = np.arange(n, dtype=np.uint64)
        with np.errstate(over="ignore"):
            stream = splitmix64(self.keys ^ (np.uint64(self.counter) * _COUNTER))
            words = splitmix64(stream[:, None] + index[None, :] * _GOLDEN)
        return words.reshape((self.batch_size, *size))

    def uniform(
        self, low: float = 0.0, high: float = 1.0, size: tuple[int, ...] = ()
    ) -> np.ndarray:
        """Floats in ``[low, high)`` of shape ``[B, *size]``."""
        unit = (self.bits(size) >> np.uint64(11)).astype(np.float64) * _TO_UNIT
        return low + (high - low) * unit

    def normal(self, size: tuple[int, ...] = ()) -> np.ndarray:
        """Standard normal floats of shape ``[B, *size]`` (Box-Muller)."""
        u1 = 1.0 - self.uniform(size=size)
        u2 = self.uniform(size=size)
        return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)

    def integers(self, high: int | np.ndarray, size: tuple[int, ...] = ()) -> np.ndarray:
        """Integers in ``[0, high)``; ``high`` may be a per-column array of shape ``[B]``."""
        high = np.asarray(high, dtype=np.int64).reshape((-1,) + (1,) * len(size))
        return np.minimum((self.uniform(size=size) * high).astype(np.int64), high - 1)

    def categorical(self, probs: np.ndarray) -> np.ndarray:
        """One index per column from per-column probabilities ``probs`` of shape ``[B, K]``."""
        cdf = np.cumsum(probs, axis=-1)
        u = self.uniform() * cdf[:, -1]
        return np.minimum((cdf <= u[:, None]).sum(axis=-1), probs.shape[-1] - 1)

    def bernoulli(self, p: np.ndarray) -> np.ndarray:
        """Booleans with per-entry probability ``p`` of shape ``[B, ...]``."""
        return self.uniform(size=p.shape[1:]) < p
