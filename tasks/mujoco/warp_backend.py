"""The ``warp`` backend: MuJoCo Warp, every world in one ``mjw.Data``, arrays shared with torch through ``wp.to_torch``.

On CUDA the ``decimation`` sub-steps (and ``rne_postconstraint`` when a task reads contact forces) are captured once as
a CUDA graph and replayed every step. Per-world parameters are batched model fields (``put_model(batch_sizes=...)``),
written in place through their torch views. Warp also runs on its CPU device -- single-threaded and 5-10x slower than
MuJoCo C -- which is how the tests exercise this backend on machines without a GPU.
"""

# pyright: reportAttributeAccessIssue=false
# (mujoco's compiled modules are re-exported with `import *`, which pyright cannot follow)

from __future__ import annotations

import mujoco
import numpy as np
import torch

from tasks.mujoco.config import CONST_FIELDS, RNE_POST_FIELDS, SETCONST_PARAMS, STATE_FIELDS, SimConfig


class WarpBackend:
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
        try:
            import mujoco_warp as mjw
            import warp as wp
        except ImportError as err:
            raise ImportError("the warp backend needs mujoco-warp: pip install 'rsl-rl-forge[warp]'") from err
        self.wp, self.mjw = wp, mjw
        self.model = model
        self.num_worlds = num_worlds
        self.device = device
        self.decimation = decimation
        self.need_rne = any(name in RNE_POST_FIELDS for name in fields)
        self.wp_device = f"cuda:{device.index or 0}" if device.type == "cuda" else "cpu"
        host = mujoco.MjData(model)
        mujoco.mj_forward(model, host)
        sizes = {k: v for k, v in (("nconmax", cfg.nconmax), ("njmax", cfg.njmax)) if v > 0}
        # Constants derived from a per-world parameter (set_params recomputes them) are per-world too.
        self._setconst = any(name in SETCONST_PARAMS for name in params)
        derived = [name for name in CONST_FIELDS if self._setconst and name in mjw.Model.__dataclass_fields__]
        batched = [*params, *(name for name in derived if getattr(model, name).size)]
        with wp.ScopedDevice(self.wp_device):
            self.m = mjw.put_model(model, batch_sizes=dict.fromkeys(batched, num_worlds))
            self.d = mjw.put_data(model, host, nworld=num_worlds, **sizes)
        # MjData's shapes (matrices such as site_xmat flat, as in MuJoCo C): views, still without a copy.
        self.data = {
            name: self._view(getattr(self.d, name)).view(num_worlds, *np.shape(getattr(host, name))) for name in fields
        }
        self.inputs = {name: self._view(getattr(self.d, name)) for name in ("ctrl", "xfrc_applied")}
        self.params = {name: self._view(getattr(self.m, name)) for name in params}
        self._warmstart = self._view(self.d.qacc_warmstart)
        # mujoco_warp flags, per world, what did not fit its fixed-size buffers (bits of mjw.OverflowType, sticky until
        # the world is reset). Constraint rows beyond sim.njmax are dropped from that world's solve: its physics is
        # wrong, so it is reported unstable (reset and counted). Collision overflows -- the contact pool shared by all
        # worlds (sim.nconmax), heightfield, CCD and EPA buffers -- drop or degrade contacts: counted per step.
        kind = mjw.OverflowType
        self._world_overflow = int(kind.NEFC | kind.NJMAX_NNZ | kind.NVMAX)
        self._contact_overflow = int(kind.BROADPHASE | kind.NARROWPHASE | kind.CCD | kind.HFIELD | kind.EPA_HORIZON)
        self._overflow = self._view(self.d.overflow)
        self.m.opt.warn_overflow = 0  # no kernel printf per world and step: the runner logs once per iteration
        self._contact_overflow_steps = torch.zeros((), dtype=torch.long, device=device)
        self._graph = None
        if device.type == "cuda" and cfg.cuda_graph:
            with wp.ScopedDevice(self.wp_device):
                self._substeps()  # compile the kernels outside the capture
                with wp.ScopedCapture() as capture:
                    self._substeps()
            self._graph = capture.graph

    def _view(self, array: object) -> torch.Tensor:
        """Zero-copy torch view; vector element types become a trailing dimension."""
        return self.wp.to_torch(array)

    def use_input(self, name: str) -> None:
        """Inputs live in the Warp data itself: nothing to switch on."""

    def _substeps(self) -> None:
        for _ in range(self.decimation):
            self.mjw.step(self.m, self.d)
        if self.need_rne:
            self.mjw.rne_postconstraint(self.m, self.d)

    def step(self, ids: object = None) -> torch.Tensor:
        """Advances every world (one graph for all): ``ids`` (``Simulator.active_worlds``) is only a hint."""
        del ids
        if self._graph is not None:
            self.wp.capture_launch(self._graph)
        else:
            with self.wp.ScopedDevice(self.wp_device):
                self._substeps()
        qpos, qvel = self.data["qpos"], self.data["qvel"]
        overflow = self._overflow
        self._contact_overflow_steps += ((overflow & self._contact_overflow) != 0).any()
        unstable = ~(torch.isfinite(qpos).all(dim=1) & torch.isfinite(qvel).all(dim=1))
        unstable |= (overflow & self._world_overflow) != 0
        overflow.zero_()  # read: the next step reports only its own overflows
        return unstable

    def take_counts(self) -> dict[str, torch.Tensor]:
        """Steps since the last call in which some world's contacts overflowed a buffer (device scalar, no sync)."""
        steps = self._contact_overflow_steps
        self._contact_overflow_steps = torch.zeros_like(steps)
        return {"contact_overflow": steps}

    def reset(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        """Masked reset without a host sync. ``forward`` runs on every world, so the rows of the other worlds (read
        fields and solver warm-start) are saved before and restored after: they stay exactly as a CPU world would."""
        wp, mjw = self.wp, self.mjw
        keep = ~mask
        saved = {name: tensor.clone() for name, tensor in self.data.items()}
        warmstart = self._warmstart.clone()
        with wp.ScopedDevice(self.wp_device):
            mjw.reset_data(self.m, self.d, reset=wp.from_torch(mask.to(torch.bool).contiguous(), dtype=wp.bool))
            rows = mask.unsqueeze(-1)
            self.data["qpos"].copy_(torch.where(rows, qpos.to(self.data["qpos"].dtype), saved["qpos"]))
            self.data["qvel"].copy_(torch.where(rows, qvel.to(self.data["qvel"].dtype), saved["qvel"]))
            mjw.forward(self.m, self.d)
        for name, tensor in self.data.items():
            shape = (-1,) + (1,) * (tensor.dim() - 1)
            tensor.copy_(torch.where(keep.view(shape), saved[name], tensor))
        self._warmstart.copy_(torch.where(keep.unsqueeze(-1), warmstart, self._warmstart))

    def state_views(self) -> dict[str, torch.Tensor]:
        """Live views of the integration state in the Warp data."""
        return {name: self._view(getattr(self.d, name)) for name in STATE_FIELDS}

    def load_state(self, state: dict[str, torch.Tensor], data: dict[str, torch.Tensor]) -> None:
        for name, view in self.state_views().items():
            view.copy_(state[name].view(view.shape))
        for name, tensor in self.data.items():
            tensor.copy_(data[name])
        self._overflow.zero_()

    def set_params(self, name: str, values: torch.Tensor, mask: torch.Tensor) -> None:
        target = self.params[name]
        shape = (-1,) + (1,) * (target.dim() - 1)
        target.copy_(torch.where(mask.view(shape), values.to(target.dtype), target))
        if name in SETCONST_PARAMS:
            self._set_const()

    def _set_const(self) -> None:
        """Recompute the constants derived from the per-world parameters (every world: unchanged ones get the same
        values). set_const computes at qpos0 in the worlds' own data and puts qpos back; the fields tasks read are saved
        and restored, so the worlds' states and observations are untouched."""
        saved = {name: tensor.clone() for name, tensor in self.data.items()}
        with self.wp.ScopedDevice(self.wp_device):
            self.mjw.set_const(self.m, self.d, restore=False)
        for name, tensor in self.data.items():
            tensor.copy_(saved[name])

    def close(self) -> None:
        self._graph = None


def warp_available() -> bool:
    try:
        import mujoco_warp  # noqa: F401
        import warp  # noqa: F401
    except ImportError:
        return False
    return True
