"""The ``cpu`` backend: MuJoCo C through :class:`mujoco.batch.Batch` -- every world a state row, stepped on a C thread
pool, results bit-identical to a loop over one ``MjData`` per world (solver warm-start included).

``Batch.bind`` exposes each field as a live ``[N, ...]`` array (state fields are views of the state rows, derived fields
are refreshed after every call) and ``Batch.expand`` gives model fields per-world values, so torch views them all
without copying. Measured against raw ``mujoco.rollout`` in bench/mujoco_throughput.py.
"""

# pyright: reportAttributeAccessIssue=false
# (mujoco's compiled modules are re-exported with `import *`, which pyright cannot follow)

from __future__ import annotations

import warnings

import mujoco
import numpy as np
import torch
from mujoco.batch import Batch

from tasks.mujoco.config import SETCONST_PARAMS, STATE_FIELDS, SimConfig

_BAD_STATE_WARNINGS = [
    int(mujoco.mjtWarning.mjWARN_BADQACC),
    int(mujoco.mjtWarning.mjWARN_BADQPOS),
    int(mujoco.mjtWarning.mjWARN_BADQVEL),
]


def _view(array: np.ndarray) -> torch.Tensor:
    """Zero-copy torch view of a Batch array. Derived fields are read-only numpy arrays: tasks only read them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


class HostMirror:
    """Host-owned worlds seen from a torch device: zero-copy views on CPU, mirrors copied once per step elsewhere.

    Both cpu-backend paths keep their worlds in host arrays (``_host`` read fields, ``_host_inputs`` controls and
    forces, ``_host_params`` per-world parameters); this class exposes them as ``data``, ``inputs`` and ``params``.
    """

    device: torch.device

    def _mirror(
        self, host: dict[str, torch.Tensor], inputs: dict[str, torch.Tensor], params: dict[str, torch.Tensor]
    ) -> None:
        self._host, self._host_inputs, self._host_params = host, inputs, params
        if self.device.type == "cpu":
            self.data, self.inputs, self.params = host, inputs, params
        else:
            self.data = {k: v.to(self.device) for k, v in host.items()}
            self.inputs = {k: v.to(self.device) for k, v in inputs.items()}
            self.params = {k: v.to(self.device) for k, v in params.items()}

    def _push_inputs(self) -> None:
        """Device inputs → host, before stepping."""
        if self.device.type != "cpu":
            for name, tensor in self.inputs.items():
                self._host_inputs[name].copy_(tensor)

    def _pull_data(self, index: torch.Tensor | None = None) -> None:
        """Host fields (of the worlds in ``index``, else all) → device, after stepping or resetting."""
        if self.device.type == "cpu":
            return
        if index is None:
            for name, tensor in self.data.items():
                tensor.copy_(self._host[name])
            return
        device_index = index.to(self.device)
        for name, tensor in self.data.items():
            tensor[device_index] = self._host[name][index].to(self.device)
        for name, tensor in self.inputs.items():
            tensor[device_index] = self._host_inputs[name][index].to(self.device)

    def _pull_all(self) -> None:
        """Every host array → its device mirror (after a checkpoint is loaded)."""
        if self.device.type != "cpu":
            for mirror, host in (
                (self.data, self._host),
                (self.inputs, self._host_inputs),
                (self.params, self._host_params),
            ):
                for name, tensor in mirror.items():
                    tensor.copy_(host[name])

    def _load_host(
        self, views: dict[str, torch.Tensor], state: dict[str, torch.Tensor], data: dict[str, torch.Tensor]
    ) -> None:
        """Write a saved integration state into the host views, then the saved read fields (derived ones included: they
        are outputs that the next call overwrites anyway, so writing them is safe), then refresh the device mirrors."""
        for name, view in views.items():
            view.copy_(state[name])
        for name, tensor in self._host.items():
            tensor.copy_(data[name])
        self._pull_all()

    def take_counts(self) -> dict[str, torch.Tensor]:
        """MuJoCo C grows its buffers as needed: nothing to count."""
        return {}

    def set_params(self, name: str, values: torch.Tensor, mask: torch.Tensor) -> None:
        host = self._host_params[name]
        host_mask = mask.cpu().view((-1,) + (1,) * (host.dim() - 1))
        host.copy_(torch.where(host_mask, values.cpu().to(host.dtype), host))
        if self.device.type != "cpu":
            self.params[name].copy_(host)


class BatchBackend(HostMirror):
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
        self.batch = Batch(model, num_worlds, nthread=cfg.nthread)
        self.batch.reset()  # the model's defaults, then mj_forward
        self._mirror(
            {name: _view(self.batch.bind(name)) for name in fields},
            {name: _view(self.batch.bind(name)) for name in ("ctrl", "xfrc_applied")},
            {name: _view(self.batch.expand(name)) for name in params},
        )

    def use_input(self, name: str) -> None:
        """Inputs are views of the state rows: always applied."""

    def _take_warnings(self) -> np.ndarray:
        """``bool[N]``: a bad-state warning was raised since the last call; the counters are cleared for the next one.

        Clearing, not comparing with the previous total: when MuJoCo resets a bad world it also resets its counters and
        then counts the new warning, so a second blow-up leaves the total unchanged, and ``batch.reset`` clears them."""
        counts = self.batch.warning[:, _BAD_STATE_WARNINGS, 1]
        warned = counts.sum(axis=1) > 0
        self.batch.warning[:, _BAD_STATE_WARNINGS, 1] = 0
        return warned

    def step(self, ids: np.ndarray | None = None) -> torch.Tensor:
        """``ids``: the worlds to advance (``Simulator.active_worlds``); None: all."""
        self._push_inputs()
        self.batch.step(ids, nstep=self.decimation)
        qpos, qvel = self._host["qpos"], self._host["qvel"]
        # Non-finite state, or a MuJoCo bad-state warning since the last step (MuJoCo then reset that world itself).
        warned = torch.from_numpy(self._take_warnings())
        unstable = ~(torch.isfinite(qpos).all(dim=1) & torch.isfinite(qvel).all(dim=1)) | warned
        self._pull_data()
        return unstable.to(self.device)

    def reset(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        # The host owns the worlds, so learning which ones to reset costs no device sync.
        ids = mask.nonzero().squeeze(-1).cpu().numpy().astype(np.int64)
        if ids.size == 0:
            return
        index = torch.from_numpy(ids)
        self.batch.reset(ids, stage=mujoco.mjtStage.mjSTAGE_NONE.value)
        self._host["qpos"][index] = qpos.cpu()[index].to(torch.float64)
        self._host["qvel"][index] = qvel.cpu()[index].to(torch.float64)
        # A warning raised here (an invalid reset state, which MuJoCo replaces by the defaults) is reported as unstable
        # by the next step, like one raised while stepping.
        self.batch.forward(ids)
        self._pull_data(index)

    def state_views(self) -> dict[str, torch.Tensor]:
        """Live host views of the integration state (slices of the Batch's state rows)."""
        return {name: _view(self.batch.bind(name)) for name in STATE_FIELDS}

    def load_state(self, state: dict[str, torch.Tensor], data: dict[str, torch.Tensor]) -> None:
        self._load_host(self.state_views(), state, data)
        self._take_warnings()  # nothing that happened before the checkpoint is reported after it

    def set_params(self, name: str, values: torch.Tensor, mask: torch.Tensor) -> None:
        super().set_params(name, values, mask)
        if name in SETCONST_PARAMS:  # recompute what MuJoCo derives from it, for the changed worlds
            self.batch.set_const(np.flatnonzero(mask.cpu().numpy()).astype(np.int32))

    def close(self) -> None:
        pass
