"""A batched env whose columns are stepped in worker processes.

For families whose single env is an expensive simulator with no array dynamics (Meta-World),
the generic fallback :class:`~metarl.family.vector.SyncBatchedEnv` uses one core.
:class:`ParallelBatchedEnv` splits the columns into contiguous shares, one per worker
process; each worker steps its share with a :class:`SyncBatchedEnv` built from the same env
factories, column ``i`` of worker ``w`` seeded with ``seed + offset_w + i``. It therefore has
the semantics of the fallback (autoreset disabled, terminated columns stay terminated, see
:mod:`metarl.family.vector`) and agrees with a :class:`SyncBatchedEnv` over the same factories
exactly, for the same seeds and actions.

Workers live in a :class:`WorkerPool`, kept for the life of the process and shared by every
parallel env with the same number of workers (:func:`shared_pool`), so a sampler that builds a
batched env per rollout starts no processes after the first, and a family can keep its
simulators in the workers between rollouts. Workers are forked where the platform allows it
(no re-import of the main script, nothing to pickle at start; they never run torch), else
spawned. Env factories and actions travel by pickle: factories must be picklable (a
``functools.partial`` of a module-level function over picklable arguments).

An error raised in a worker comes back as a :class:`WorkerError` naming the worker and the
error; the worker stays usable. A worker that died makes the pool unusable, and the next
:func:`shared_pool` call starts a fresh one.
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing
import os
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.family.vector import BatchedEnv, SyncBatchedEnv

EnvFactory = Callable[[], gym.Env]
"""A picklable callable that builds one column's env."""


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class WorkerError(RuntimeError):
    """A worker process failed; the message names the worker and what went wrong."""


def _worker(index: int, connection: Connection, inherited: list[Connection]) -> None:
    """A worker's loop: build, reset, step and close batched envs on request.

    ``inherited``: the parent's ends of the pipes made so far, which a forked worker holds
    copies of; closed at once, so that the worker sees end-of-file when the parent dies."""
    for end in inherited:
        end.close()
    envs: dict[int, SyncBatchedEnv] = {}
    while True:
        try:
            command, handle, payload = connection.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if command == "stop":
            for env in envs.values():
                env.close()
            connection.send(("ok", None))
            return
        try:
            if command == "open":
                factories, flags = payload
                env = SyncBatchedEnv([make() for make in factories], flags=flags)
                envs[handle] = env
                result: Any = (env.single_observation_space, env.single_action_space)
            elif command == "reset":
                seed, options = payload
                result = envs[handle].reset(seed=seed, options=options)
            elif command == "step":
                result = envs[handle].step(payload)
            elif command == "reset_columns":
                result = envs[handle].reset_columns(payload)
            elif command == "close":
                closing = envs.pop(handle, None)
                if closing is not None:
                    closing.close()
                result = None
            else:
                raise ValueError(f"unknown command {command!r}")
        except Exception as error:  # sent back and raised in the parent, worker stays up
            where = traceback.extract_tb(error.__traceback__)[-1]
            connection.send(("error", f"{type(error).__name__}: {error} "
                                      f"({where.filename}:{where.lineno})"))
            continue
        connection.send(("ok", result))


class WorkerPool:
    """``workers`` processes that host batched envs (see the module docstring)."""

    def __init__(self, workers: int, start_method: str | None = None) -> None:
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        if start_method is None:
            methods = multiprocessing.get_all_start_methods()
            start_method = "fork" if "fork" in methods else "spawn"
        context = multiprocessing.get_context(start_method)
        self.workers = workers
        self.start_method = start_method
        self.broken = False
        self._handles = itertools.count()
        self._connections: list[Connection] = []
        self._processes: list[Any] = []
        for index in range(workers):
            parent, child = context.Pipe()
            inherited = [*self._connections, parent] if start_method == "fork" else []
            process = context.Process(  # type: ignore[attr-defined]
                target=_worker, args=(index, child, inherited), daemon=True,
                name=f"metarl-env-worker-{index}")
            process.start()
            child.close()
            self._connections.append(parent)
            self._processes.append(process)

    def new_handle(self) -> int:
        return next(self._handles)

    def call(self, messages: dict[int, tuple[str, int, Any]]) -> dict[int, Any]:
        """Send each worker in ``messages`` its ``(command, handle, payload)`` and gather the
        results; any worker's error is raised once every reply is in (so the pipes stay in
        step)."""
        replies = self.exchange(messages)
        errors = [f"worker {index}: {result}" for index, (status, result) in replies.items()
                  if status == "error"]
        if errors:
            raise WorkerError("; ".join(errors))
        return {index: result for index, (_, result) in replies.items()}

    def exchange(self, messages: dict[int, tuple[str, int, Any]]
                 ) -> dict[int, tuple[str, Any]]:
        """:meth:`call` returning each worker's ``(status, result)``, ``"ok"`` or ``"error"``
        (with the error's one-line description), without raising the workers' errors."""
        if self.broken:
            raise WorkerError("the env worker pool is unusable after a worker died; build a "
                              "new batched env")
        try:
            for index, message in messages.items():
                self._connections[index].send(message)
            replies = {index: self._connections[index].recv() for index in messages}
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
            self.broken = True
            dead = [f"worker {i} (exit code {p.exitcode})"
                    for i, p in enumerate(self._processes) if not p.is_alive()]
            raise WorkerError(f"env worker process died: {', '.join(dead) or 'unknown'}; "
                              "is memory short?") from None
        return replies

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        for connection, process in zip(self._connections, self._processes):
            try:
                if process.is_alive() and not self.broken:
                    connection.send(("stop", -1, None))
                    if connection.poll(5):
                        connection.recv()
            except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
                pass
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            connection.close()
        self._connections, self._processes = [], []
        self.broken = True


_SHARED: dict[tuple[int, str | None], WorkerPool] = {}


def shared_pool(workers: int, start_method: str | None = None) -> WorkerPool:
    """The process-wide pool of ``workers`` workers, started on first use (and again if a
    worker of the previous one died); stopped at exit."""
    key = (workers, start_method)
    pool = _SHARED.get(key)
    if pool is None or pool.broken:
        pool = _SHARED[key] = WorkerPool(workers, start_method)
    return pool


@atexit.register
def close_shared_pools() -> None:
    """Stop every shared pool's workers."""
    for pool in _SHARED.values():
        pool.close()
    _SHARED.clear()


class ParallelBatchedEnv(BatchedEnv):
    """A batched env over ``factories`` (one per column, task-major) stepped by ``workers``
    processes, each stepping a contiguous share of the columns.

    ``flags`` as for :class:`SyncBatchedEnv`. ``pool``: the workers to use (default: the
    shared pool of ``workers``); a pool made for this env alone is stopped on :meth:`close`
    when ``own_pool`` is true.
    """

    def __init__(
        self,
        factories: Sequence[EnvFactory],
        workers: int | None = None,
        flags: Sequence[str] = (),
        pool: WorkerPool | None = None,
        own_pool: bool = False,
    ) -> None:
        if not factories:
            raise ValueError("ParallelBatchedEnv needs at least one env")
        n = len(factories)
        if pool is None:
            workers = available_cores() if workers is None else workers
            pool = shared_pool(max(1, min(workers, n)))
        self.pool = pool
        self.own_pool = own_pool
        self._opened: list[int] = []
        self.flags = tuple(flags)
        shares = [share for share in np.array_split(np.arange(n), min(pool.workers, n))
                  if len(share)]
        self._slices = [slice(int(share[0]), int(share[-1]) + 1) for share in shares]
        self._handle = pool.new_handle()
        replies = pool.exchange({
            index: ("open", self._handle, (list(factories[part]), self.flags))
            for index, part in enumerate(self._slices)
        })
        self._opened = [index for index, (status, _) in replies.items() if status == "ok"]
        errors = [f"worker {index}: {result}" for index, (status, result) in replies.items()
                  if status == "error"]
        if errors:
            self.close_extras()
            raise WorkerError("building the envs failed: " + "; ".join(errors))
        observation_space, action_space = replies[0][1]
        self._set_spaces(n, observation_space, action_space)

    def _call(self, command: str, payloads: list[Any]) -> list[Any]:
        results = self.pool.call({index: (command, self._handle, payload)
                                  for index, payload in enumerate(payloads)})
        return [results[index] for index in range(len(payloads))]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        payloads = [(None if seed is None else seed + part.start, options)
                    for part in self._slices]
        results = self._call("reset", payloads)
        return np.concatenate([obs for obs, _ in results]), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions)
        if len(actions) != self.num_envs:
            raise ValueError(f"expected actions for {self.num_envs} columns, got {len(actions)}")
        results = self._call("step", [actions[part] for part in self._slices])
        obs, rewards, terminated, truncated = (
            np.concatenate([result[k] for result in results]) for k in range(4)
        )
        info = {key: np.concatenate([result[4][key] for result in results])
                for key in self.flags}
        return obs, rewards, terminated, truncated, info

    def reset_columns(self, columns: np.ndarray) -> np.ndarray:
        columns = np.asarray(columns, dtype=bool)
        if columns.shape != (self.num_envs,):
            raise ValueError(f"expected a mask of {self.num_envs} columns, got {columns.shape}")
        return np.concatenate(self._call("reset_columns",
                                         [columns[part] for part in self._slices]))

    def close_extras(self, **kwargs: Any) -> None:
        opened, self._opened = self._opened, []
        if opened and not self.pool.broken:
            try:
                self.pool.call({index: ("close", self._handle, None) for index in opened})
            except WorkerError:
                pass
        if self.own_pool:
            self.pool.close()
