"""The ``cpu`` backend's path for tasks that read ``mj_rnePostConstraint`` fields (``cfrc_ext``, ``cfrc_int``), which
:mod:`mujoco.batch` does not compute but gymnasium's Ant and HumanoidStandup observe after every step.

Layout as in ``mujoco.batch``: every world is a row of its ``mjSTATE_INTEGRATION`` state (qpos, qvel, act, controls,
applied forces, solver warm-start, ...); each thread owns one ``MjData`` (and, with per-world parameters, one
``MjModel``) and, for each of its worlds, loads the row, steps, runs ``mj_rnePostConstraint``, copies the derived
fields out and saves the row back. A world therefore evolves exactly as with its own ``MjData``, while the working set
stays a few ``MjData`` large (one ``MjData`` per world thrashed the caches: ~25 % slower on Ant with 1024 worlds).
``mj_step`` releases the GIL, so the threads step in parallel.
"""

# pyright: reportAttributeAccessIssue=false
# (mujoco's compiled modules are re-exported with `import *`, which pyright cannot follow)

from __future__ import annotations

import copy
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import mujoco
import numpy as np
import torch

from tasks.mujoco.config import CONST_FIELDS, SETCONST_PARAMS, STATE_FIELDS, SimConfig
from tasks.mujoco.cpu_backend import HostMirror

_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION
_STATE_PARTS = {  # fields stored in the state rows, in mjtState order
    "time": mujoco.mjtState.mjSTATE_TIME,
    "qpos": mujoco.mjtState.mjSTATE_QPOS,
    "qvel": mujoco.mjtState.mjSTATE_QVEL,
    "act": mujoco.mjtState.mjSTATE_ACT,
    "qacc_warmstart": mujoco.mjtState.mjSTATE_WARMSTART,
    "ctrl": mujoco.mjtState.mjSTATE_CTRL,
    "qfrc_applied": mujoco.mjtState.mjSTATE_QFRC_APPLIED,
    "xfrc_applied": mujoco.mjtState.mjSTATE_XFRC_APPLIED,
    "mocap_pos": mujoco.mjtState.mjSTATE_MOCAP_POS,
    "mocap_quat": mujoco.mjtState.mjSTATE_MOCAP_QUAT,
}
_BAD_STATE = [
    int(mujoco.mjtWarning.mjWARN_BADQACC),
    int(mujoco.mjtWarning.mjWARN_BADQPOS),
    int(mujoco.mjtWarning.mjWARN_BADQVEL),
]


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _state_offset(model: mujoco.MjModel, part: int) -> int:
    """Offset of a state component inside an ``mjSTATE_INTEGRATION`` row (components are stored in bit order)."""
    lower = int(_SPEC) & (int(part) - 1)
    return mujoco.mj_stateSize(model, lower)


class ThreadPoolBackend(HostMirror):
    def __init__(
        self,
        model: mujoco.MjModel,
        num_worlds: int,
        device: torch.device,
        decimation: int,
        fields: tuple[str, ...],
        params: tuple[str, ...],
        cfg: SimConfig,
    ) -> None:
        self.model = model
        self.num_worlds = num_worlds
        self.device = device
        self.decimation = decimation
        self.nthread = max(1, min(cfg.nthread or available_cores(), num_worlds))
        n = num_worlds
        # One model and one MjData per thread; per-world parameters are written into the thread's model per world.
        self._models = [copy.copy(model) if params else model for _ in range(self.nthread)]
        self._datas = [mujoco.MjData(m) for m in self._models]
        self.state = np.zeros((n, mujoco.mj_stateSize(model, _SPEC)))
        d = self._datas[0]
        mujoco.mj_forward(model, d)
        mujoco.mj_getState(model, d, self.state[0], _SPEC)
        self.state[:] = self.state[0]

        def row_view(name: str, shape: tuple[int, ...]) -> np.ndarray:
            start = _state_offset(model, _STATE_PARTS[name])
            return self.state[:, start : start + int(np.prod(shape))].reshape(n, *shape)

        d0 = self._datas[0]
        self._state_views = {
            name: torch.from_numpy(row_view(name, np.shape(getattr(d0, name)))) for name in STATE_FIELDS
        }

        self._derived = [name for name in fields if name not in _STATE_PARTS]
        # Each field keeps MjData's own shape (the facade's tables and mujoco.batch give the same).
        host = {
            name: torch.from_numpy(row_view(name, np.shape(getattr(d0, name))))
            for name in fields
            if name in _STATE_PARTS
        }
        self._derived_bufs = {name: np.zeros((n, *np.shape(getattr(d0, name)))) for name in self._derived}
        host.update({name: torch.from_numpy(buf) for name, buf in self._derived_bufs.items()})
        host_inputs = {
            "ctrl": torch.from_numpy(row_view("ctrl", (model.nu,))),
            "xfrc_applied": torch.from_numpy(row_view("xfrc_applied", (model.nbody, 6))),
        }
        self._params = {
            name: np.tile(np.asarray(getattr(model, name)), (n,) + (1,) * getattr(model, name).ndim) for name in params
        }
        self._mirror(host, host_inputs, {name: torch.from_numpy(buf) for name, buf in self._params.items()})
        self._need_rne = "cfrc_ext" in fields or "cfrc_int" in fields
        self._params_differ = False  # until set_params gives worlds their own values, the threads' models serve all
        # Per-world constants that mj_setConst derives from the parameters (filled on the first change of one of them).
        self._const: dict[str, np.ndarray] = {}
        self._derived_list = list(self._derived_bufs.values())
        self._derived_views = [[getattr(d, name) for name in self._derived_bufs] for d in self._datas]
        self._warning_counts = [d.warning.number for d in self._datas]
        self._unstable = np.zeros(n, dtype=bool)
        self._reset_warned = np.zeros(n, dtype=bool)  # an invalid reset state, reported by the next step
        for i in range(n):
            self._refresh(0, i, step=False)
        bounds = np.linspace(0, n, self.nthread + 1).astype(int)
        self._chunks = [(t, int(lo), int(hi)) for t, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))]
        self._pool = ThreadPoolExecutor(self.nthread, thread_name_prefix="mujoco") if self.nthread > 1 else None

    def use_input(self, name: str) -> None:
        """Inputs are views of the state rows: always applied."""

    # --- stepping ----------------------------------------------------------------------------------------------------

    def _load_model(self, m: mujoco.MjModel, i: int) -> None:
        """Write world ``i``'s parameters (and the constants derived from them) into a thread's model."""
        if self._params_differ:
            for name, values in self._params.items():
                getattr(m, name)[:] = values[i]
            for name, values in self._const.items():
                getattr(m, name)[:] = values[i]

    def _refresh(self, thread: int, i: int, step: bool) -> None:
        """Load world ``i`` into the thread's MjData, optionally step it, and write its state and fields back."""
        m, d = self._models[thread], self._datas[thread]
        self._load_model(m, i)
        mujoco.mj_setState(m, d, self.state[i], _SPEC)
        if step:
            # A bad state makes MuJoCo reset the world, reset its warning counters and count one warning: cleared
            # before each world's step, a non-zero count is that world's blow-up (a count compared with the one before
            # the step misses every later blow-up on the same MjData).
            self._unstable[i] = self._stepped_with_warning(thread, lambda: mujoco.mj_step(m, d, nstep=self.decimation))
        if self._need_rne:
            mujoco.mj_rnePostConstraint(m, d)
        mujoco.mj_getState(m, d, self.state[i], _SPEC)
        for buf, view in zip(self._derived_list, self._derived_views[thread], strict=True):
            buf[i] = view

    def _stepped_with_warning(self, thread: int, run: Any) -> bool:
        """Run ``run()`` on the thread's MjData; True when it raised a bad-state warning."""
        counts = self._warning_counts[thread]  # a live view of the MjData's warning counters
        # Scalar reads and writes: this runs per world and step while holding the GIL, and numpy fancy indexing
        # costs ~10x more (measured: the Ant task 9 % slower with it).
        qacc, qpos, qvel = _BAD_STATE
        counts[qacc] = counts[qpos] = counts[qvel] = 0
        run()
        return bool(counts[qacc] or counts[qpos] or counts[qvel])

    def _step_range(self, thread: int, lo: int, hi: int) -> None:
        for i in range(lo, hi):
            self._refresh(thread, i, step=True)

    def step(self, ids: np.ndarray | None = None) -> torch.Tensor:
        """Advances every world: ``ids`` (``Simulator.active_worlds``) is only a hint, not used here."""
        del ids
        self._push_inputs()
        if self._pool is None:
            self._step_range(0, 0, self.num_worlds)
        else:
            for future in [self._pool.submit(self._step_range, *chunk) for chunk in self._chunks]:
                future.result()
        qpos, qvel = self._host["qpos"], self._host["qvel"]
        finite = torch.isfinite(qpos).all(dim=1) & torch.isfinite(qvel).all(dim=1)
        unstable = torch.from_numpy(self._unstable | self._reset_warned) | ~finite
        self._reset_warned[:] = False
        self._pull_data()
        return unstable.to(self.device)

    # --- reset and parameters ----------------------------------------------------------------------------------------

    def reset(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        # The host owns the worlds, so learning which ones to reset costs no device sync.
        ids = mask.nonzero().squeeze(-1).cpu().numpy()
        if ids.size == 0:
            return
        qpos_np, qvel_np = qpos.cpu().double().numpy(), qvel.cpu().double().numpy()
        m, d = self._models[0], self._datas[0]
        for i in ids:
            self._load_model(m, i)
            mujoco.mj_resetData(m, d)
            d.qpos[:] = qpos_np[i]
            d.qvel[:] = qvel_np[i]
            # MuJoCo replaces an invalid state by the defaults here: reported unstable by the next step, as on the
            # mujoco.batch path.
            self._reset_warned[i] = self._stepped_with_warning(0, lambda: mujoco.mj_forward(m, d))
            mujoco.mj_getState(m, d, self.state[i], _SPEC)
            for name, buf in self._derived_bufs.items():
                buf[i] = getattr(d, name)
        self._pull_data(torch.as_tensor(ids))

    def state_views(self) -> dict[str, torch.Tensor]:
        """Live host views of the integration state (slices of the state rows)."""
        return self._state_views

    def load_state(self, state: dict[str, torch.Tensor], data: dict[str, torch.Tensor]) -> None:
        self._load_host(self._state_views, state, data)
        self._reset_warned[:] = False

    def set_params(self, name: str, values: torch.Tensor, mask: torch.Tensor) -> None:
        super().set_params(name, values, mask)
        self._params_differ = True  # from now on each world's values are written into its thread's model
        if name in SETCONST_PARAMS:
            self._set_const(np.flatnonzero(mask.cpu().numpy()))

    def _set_const(self, worlds: np.ndarray) -> None:
        """Recompute, for each of ``worlds``, the constants MuJoCo derives from its parameters (``mj_setConst`` at
        qpos0, on a scratch model: the worlds' states are not touched)."""
        model = self.model
        if not self._const:
            self._const = {
                name: np.tile(getattr(model, name), (self.num_worlds,) + (1,) * getattr(model, name).ndim)
                for name in CONST_FIELDS
                if getattr(model, name).size
            }
        m = copy.copy(model)
        d = mujoco.MjData(m)
        for i in worlds:
            for name, values in self._params.items():
                getattr(m, name)[:] = values[i]
            mujoco.mj_setConst(m, d)
            for name, values in self._const.items():
                values[i] = getattr(m, name)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
