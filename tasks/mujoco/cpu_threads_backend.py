"""The ``cpu`` backend's exact-gymnasium path: one persistent ``MjData`` per world, stepped in a pool of Python threads.

Used when a task reads fields that only ``mj_rnePostConstraint`` computes (``cfrc_ext``, ``cfrc_int``: gymnasium's
Ant and HumanoidStandup call it after every step), which :mod:`mujoco.batch` does not run; otherwise
:class:`tasks.mujoco.cpu_backend.BatchBackend` is faster. ``mj_step`` releases the GIL, so a thread per core steps
its slice of worlds in parallel; the per-world Python work (copying ctrl in, the read fields out) uses cached numpy
views of the ``MjData`` arrays. Measured on Ant, 1024 worlds, 2 threads: ~0.75x the speed of ``mujoco.rollout``.
"""

# pyright: reportAttributeAccessIssue=false
# (mujoco's compiled modules are re-exported with `import *`, which pyright cannot follow)

from __future__ import annotations

import copy
import os
from concurrent.futures import ThreadPoolExecutor

import mujoco
import numpy as np
import torch

from tasks.mujoco.sim import DATA_FIELDS, INPUT_FIELDS, RNE_POST_FIELDS, SimConfig

_BAD_STATE_WARNINGS = (
    mujoco.mjtWarning.mjWARN_BADQACC,
    mujoco.mjtWarning.mjWARN_BADQPOS,
    mujoco.mjtWarning.mjWARN_BADQVEL,
)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class ThreadPoolBackend:
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
        self.nthread = min(cfg.nthread or available_cores(), num_worlds)
        # Per-world parameters need per-world models (MjModel copies); otherwise all worlds share one model.
        self.models = [copy.copy(model) for _ in range(num_worlds)] if params else [model] * num_worlds
        self.datas = [mujoco.MjData(m) for m in self.models]
        for m, d in zip(self.models, self.datas, strict=True):
            mujoco.mj_forward(m, d)
        self.need_rne = any(name in RNE_POST_FIELDS for name in fields)

        n = num_worlds
        self._host = {name: np.zeros((n, *DATA_FIELDS[name](model))) for name in fields}
        self._inputs = {name: np.zeros((n, *INPUT_FIELDS[name](model))) for name in INPUT_FIELDS}
        self._params = {
            name: np.tile(np.asarray(getattr(model, name)), (n,) + (1,) * getattr(model, name).ndim) for name in params
        }
        # Cached numpy views into each MjData: no pybind attribute lookups on the hot path.
        self._read_views = [[getattr(d, name) for name in fields] for d in self.datas]
        self._ctrl_views = [d.ctrl for d in self.datas]
        self._xfrc_views = [d.xfrc_applied for d in self.datas]
        self._host_list = [self._host[name] for name in fields]
        self._warnings = [[d.warning[w] for w in _BAD_STATE_WARNINGS] for d in self.datas]
        self._warning_totals = np.zeros(n, dtype=np.int64)
        self._xfrc_used = False
        for i in range(n):
            self._gather(i)

        # Torch views: zero-copy on CPU; device mirrors (copied once per step) elsewhere.
        host_tensors = {name: torch.from_numpy(buf) for name, buf in self._host.items()}
        self._host_inputs = {name: torch.from_numpy(buf) for name, buf in self._inputs.items()}
        host_params = {name: torch.from_numpy(buf) for name, buf in self._params.items()}
        if device.type == "cpu":
            self.data, self.inputs, self.params = host_tensors, self._host_inputs, host_params
        else:
            self.data = {k: v.to(device) for k, v in host_tensors.items()}
            self.inputs = {k: v.to(device) for k, v in self._host_inputs.items()}
            self.params = {k: v.to(device) for k, v in host_params.items()}
        bounds = np.linspace(0, n, self.nthread + 1).astype(int)
        self._chunks = [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]
        self._pool = ThreadPoolExecutor(self.nthread, thread_name_prefix="mujoco") if self.nthread > 1 else None

    def use_input(self, name: str) -> None:
        """Start copying an optional input (``xfrc_applied``) into the worlds at every step."""
        if name == "xfrc_applied":
            self._xfrc_used = True

    # --- stepping ----------------------------------------------------------------------------------------------------

    def _gather(self, i: int) -> None:
        for buf, view in zip(self._host_list, self._read_views[i], strict=True):
            buf[i] = view

    def _step_range(self, lo: int, hi: int) -> None:
        ctrl, xfrc = self._inputs["ctrl"], self._inputs["xfrc_applied"]
        models, datas, decimation, need_rne, xfrc_used = (
            self.models,
            self.datas,
            self.decimation,
            self.need_rne,
            self._xfrc_used,
        )
        for i in range(lo, hi):
            m, d = models[i], datas[i]
            self._ctrl_views[i][:] = ctrl[i]
            if xfrc_used:
                self._xfrc_views[i][:] = xfrc[i]
            mujoco.mj_step(m, d, nstep=decimation)
            if need_rne:
                mujoco.mj_rnePostConstraint(m, d)
            for buf, view in zip(self._host_list, self._read_views[i], strict=True):
                buf[i] = view

    def step(self) -> torch.Tensor:
        if self.device.type != "cpu":
            for name, tensor in self.inputs.items():
                self._host_inputs[name].copy_(tensor)
        if self._pool is None:
            self._step_range(0, self.num_worlds)
        else:
            for future in [self._pool.submit(self._step_range, lo, hi) for lo, hi in self._chunks]:
                future.result()
        unstable = self._unstable()
        if self.device.type != "cpu":
            for name, buf in self._host.items():
                self.data[name].copy_(torch.from_numpy(buf))
        return torch.from_numpy(unstable).to(self.device)

    def _unstable(self) -> np.ndarray:
        """Non-finite state, or a MuJoCo bad-state warning since the last check (MuJoCo reset that world itself)."""
        finite = np.isfinite(self._host["qpos"]).all(axis=1) & np.isfinite(self._host["qvel"]).all(axis=1)
        totals = np.fromiter(
            (sum(w.number for w in ws) for ws in self._warnings), dtype=np.int64, count=self.num_worlds
        )
        warned = totals != self._warning_totals
        self._warning_totals = totals
        return ~finite | warned

    # --- reset and parameters ----------------------------------------------------------------------------------------

    def reset(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        # On a CPU backend the host owns the worlds, so learning which ones to reset costs no device sync.
        ids = mask.nonzero().squeeze(-1).cpu().numpy()
        if ids.size == 0:
            return
        qpos_np, qvel_np = qpos.cpu().numpy(), qvel.cpu().numpy()
        for i in ids:
            m, d = self.models[i], self.datas[i]
            mujoco.mj_resetData(m, d)
            d.qpos[:] = qpos_np[i]
            d.qvel[:] = qvel_np[i]
            mujoco.mj_forward(m, d)
            self._gather(i)  # a warning raised by mj_forward is reported as unstable by the next step
        if self.device.type != "cpu":
            index = torch.as_tensor(ids, device=self.device)
            for name, buf in self._host.items():
                self.data[name][index] = torch.from_numpy(buf[ids]).to(self.device)
            for tensor in self.inputs.values():
                tensor[index] = 0.0
        for buf in self._inputs.values():  # mj_resetData cleared the world's controls and applied forces
            buf[ids] = 0.0

    def set_params(self, name: str, values: torch.Tensor, mask: torch.Tensor) -> None:
        ids = mask.nonzero().squeeze(-1).cpu().numpy()
        host = self._params[name]
        host[ids] = values.cpu().numpy()[ids]
        for i in ids:
            getattr(self.models[i], name)[:] = host[i]
        if self.device.type != "cpu":
            self.params[name].copy_(torch.from_numpy(host))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
