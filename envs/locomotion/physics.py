"""MuJoCo physics for a batch of states: one ``MjModel``, the whole batch stepped per call.

A batch's physical state is one array ``physics[B, nq + 2 * nv]`` per column laid out as
MuJoCo's ``mjSTATE_QPOS | mjSTATE_QVEL | mjSTATE_WARMSTART`` state: joint positions, joint
velocities and the constraint solver's warm-start accelerations. That is everything
``mj_step`` reads for these models (no actuator activations, mocap bodies or applied forces),
so a column stepped from its array follows exactly the trajectory of a Gymnasium env that
keeps its own ``MjData``. The warm start matters: the solver stops at a tolerance, and
restarting it from zero at every env step (as ``mujoco.rollout`` does at every call) moves a
half-cheetah trajectory by ~1e-3 within 100 steps and by order 1 within 200.

:meth:`BatchPhysics.step` loads each column into a scratch ``MjData``, runs ``frame_skip``
steps in one ``mj_step`` call and reads the state back; ``mj_step`` releases the GIL, so with
``threads > 1`` the columns are split between threads that each own a scratch ``MjData``.
Columns whose episode has ended can be left out of a step.
"""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gymnasium
import mujoco
import numpy as np

ASSETS = Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets"
"""Gymnasium's MuJoCo model files (the ones ``HalfCheetah-v5`` and ``Ant-v5`` load)."""
STATE_SPEC = int(
    mujoco.mjtState.mjSTATE_QPOS | mujoco.mjtState.mjSTATE_QVEL | mujoco.mjtState.mjSTATE_WARMSTART
)


def load_model(xml_file: str) -> mujoco.MjModel:
    """A model from Gymnasium's assets, e.g. ``"half_cheetah.xml"``."""
    path = ASSETS / xml_file
    if not path.is_file():
        raise FileNotFoundError(
            f"MuJoCo model {xml_file!r} not found in {ASSETS}: install gymnasium[mujoco]>=1.0"
        )
    with warnings.catch_warnings():
        # Gymnasium's files use a compiler attribute newer MuJoCo deprecates; nothing to act on.
        warnings.filterwarnings("ignore", message=".*settotalmass", category=UserWarning)
        return mujoco.MjSpec.from_file(str(path)).compile()


class BatchPhysics:
    """Steps batches of states of one model.

    ``body`` names a body whose global position is read back after each step: ``data.xpos``
    as MuJoCo leaves it, from the kinematics computed during the last substep (the value
    ``Ant-v5`` differences for its velocity);
    ``contact_forces`` reads back ``cfrc_ext`` after ``mj_rnePostConstraint``, as Gymnasium's
    ``Ant-v5`` does.
    """

    def __init__(
        self,
        xml_file: str,
        frame_skip: int,
        threads: int = 1,
        body: str | None = None,
        contact_forces: bool = False,
    ) -> None:
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        self.xml_file = xml_file
        self.frame_skip = frame_skip
        self.threads = threads
        self.body_name = body
        self.contact_forces = contact_forces
        self.model = load_model(xml_file)
        self.body = -1 if body is None else self.model.body(body).id
        self.nq, self.nv = self.model.nq, self.model.nv
        self.state_size = mujoco.mj_stateSize(self.model, STATE_SPEC)
        self.dt = self.model.opt.timestep * frame_skip
        reference = mujoco.MjData(self.model)
        self.init_qpos = reference.qpos.copy()
        self.init_qvel = reference.qvel.copy()
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None

    # --- state layout ------------------------------------------------------------------------
    def qpos(self, physics: np.ndarray) -> np.ndarray:
        """Joint positions ``[B, nq]`` (a view)."""
        return physics[:, : self.nq]

    def qvel(self, physics: np.ndarray) -> np.ndarray:
        """Joint velocities ``[B, nv]`` (a view)."""
        return physics[:, self.nq : self.nq + self.nv]

    def pack(self, qpos: np.ndarray, qvel: np.ndarray, warmstart: np.ndarray | None = None
             ) -> np.ndarray:
        """The physics array of a batch; the warm start defaults to zero (a fresh ``MjData``)."""
        qpos = np.asarray(qpos, dtype=np.float64).reshape(-1, self.nq)
        qvel = np.asarray(qvel, dtype=np.float64).reshape(-1, self.nv)
        if warmstart is None:
            warmstart = np.zeros_like(qvel)
        return np.concatenate([qpos, qvel, np.asarray(warmstart, dtype=np.float64)], axis=1)

    # --- stepping ----------------------------------------------------------------------------
    def step(self, physics: np.ndarray, ctrl: np.ndarray, active: np.ndarray | None = None
             ) -> dict[str, np.ndarray]:
        """``frame_skip`` MuJoCo steps for every column under controls ``ctrl[B, nu]``.

        Returns the new ``physics`` and, if requested, ``body_xpos[B, 3]`` and
        ``cfrc_ext[B, nbody, 6]``. Columns where ``active`` is False are not simulated: their
        physics is copied through and their extras are zero.
        """
        n = physics.shape[0]
        out = {"physics": physics.copy() if active is not None else np.empty_like(physics)}
        if self.body >= 0:
            out["body_xpos"] = np.zeros((n, 3))
        if self.contact_forces:
            out["cfrc_ext"] = np.zeros((n, self.model.nbody, 6))
        ctrl = np.ascontiguousarray(ctrl, dtype=np.float64)
        columns = np.arange(n) if active is None else np.flatnonzero(active)
        if self.threads == 1 or len(columns) < 2 * self.threads:
            self._step_columns(physics, ctrl, out, columns)
            return out
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="mujoco")
        jobs = [
            self._pool.submit(self._step_columns, physics, ctrl, out, part)
            for part in np.array_split(columns, self.threads)
        ]
        for job in jobs:
            job.result()
        return out

    def _step_columns(self, physics: np.ndarray, ctrl: np.ndarray,
                      out: dict[str, np.ndarray], columns: np.ndarray) -> None:
        model, frame_skip, spec, body = self.model, self.frame_skip, STATE_SPEC, self.body
        data = self._data()
        new = out["physics"]
        xpos = out.get("body_xpos")
        cfrc = out.get("cfrc_ext")
        for i in columns.tolist():
            mujoco.mj_setState(model, data, physics[i], spec)
            data.ctrl[:] = ctrl[i]
            mujoco.mj_step(model, data, nstep=frame_skip)
            mujoco.mj_getState(model, data, new[i], spec)
            if xpos is not None:
                xpos[i] = data.xpos[body]
            if cfrc is not None:
                mujoco.mj_rnePostConstraint(model, data)
                cfrc[i] = data.cfrc_ext

    def _data(self) -> mujoco.MjData:
        """This thread's scratch ``MjData`` (its contents never outlive one column's step)."""
        data = getattr(self._local, "data", None)
        if data is None:
            data = self._local.data = mujoco.MjData(self.model)
        return data

    def kinematics(self, qpos: np.ndarray) -> mujoco.MjData:
        """An ``MjData`` with the positions of every body and geom at ``qpos`` (for drawing)."""
        data = getattr(self._local, "drawing", None)
        if data is None:
            data = self._local.drawing = mujoco.MjData(self.model)
        data.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, data)
        return data

    # --- pickling: the model is rebuilt from its file, threads and scratch data afresh -------
    def __getstate__(self) -> dict[str, Any]:
        return {
            "xml_file": self.xml_file, "frame_skip": self.frame_skip, "threads": self.threads,
            "body": self.body_name, "contact_forces": self.contact_forces,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def close(self) -> None:
        """Stop the worker threads (they restart on the next threaded step)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
