"""The simulator facade: N worlds of one MJCF model, seen by tasks only as torch tensors on the env's device.

Two backends implement it (DESIGN.md §Simulation):

* ``cpu``  -- MuJoCo C through :class:`mujoco.batch.Batch`: worlds as state rows (solver warm-start included, so a
  world evolves exactly as a single gymnasium env would), stepped on a C thread pool, fields viewed by torch without
  copying (float64). Tasks that read ``mj_rnePostConstraint`` fields (contact forces ``cfrc_ext``) run on a pool of
  Python threads with one ``MjData`` per world instead, which Batch cannot serve.
* ``warp`` -- MuJoCo Warp. All worlds in one ``mjw.Data``; on CUDA the ``decimation`` sub-steps are captured once as a
  CUDA graph and replayed; ``wp.to_torch`` views the arrays without copying (float32). Also runs on Warp's CPU device.

A task names the data fields it reads (``fields``) and the model parameters it randomises per world (``params``) when it
builds the simulator; everything else stays inside the backend. No task calls a backend's API.

For Cartesian control (``controllers/impedance.py``) the facade also gives a site's pose and Jacobian, the bias forces
and the joint-space mass matrix (:meth:`Simulator.site_pose`, :meth:`Simulator.site_jacobian`,
:attr:`Simulator.qfrc_bias`, :meth:`Simulator.mass_matrix`): computed in torch from the fields in ``CARTESIAN_FIELDS``
(MuJoCo's own ``mj_jac`` formula on ``cdof`` and ``subtree_com``), so both backends give them alike, batched, without a
host sync. Like every derived field they describe the state at the start of the last physics substep (``mj_step`` runs
``mj_forward``, then integrates), or the state just set by ``reset``.
"""

# pyright: reportAttributeAccessIssue=false
# (mujoco's compiled modules are re-exported with `import *`, which pyright cannot follow)

from __future__ import annotations

import os
import warnings
from typing import Any

import mujoco
import numpy as np
import torch

from tasks.mujoco.config import CONES, DATA_FIELDS, PARAM_FIELDS, RNE_POST_FIELDS, SOLVERS, SimConfig

__all__ = ["CARTESIAN_FIELDS", "SimConfig", "Simulator", "load_model", "resolve_backend"]

# Every field the Cartesian accessors read: a task that uses them adds these to its ``fields``.
CARTESIAN_FIELDS = ("site_xpos", "site_xmat", "cdof", "subtree_com", "qfrc_bias", "M")


def resolve_backend(backend: str, device: torch.device) -> str:
    """``auto`` → ``warp`` on CUDA, ``cpu`` otherwise."""
    if backend == "auto":
        return "warp" if device.type == "cuda" else "cpu"
    return backend


def load_model(path: str | os.PathLike[str]) -> mujoco.MjModel:
    """Load an MJCF file with an error that names the file and MuJoCo's reason."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MJCF model file not found: {path}")
    try:
        return mujoco.MjModel.from_xml_path(path)
    except ValueError as err:
        raise ValueError(f"MuJoCo could not load {path}: {err}") from err


class Simulator:
    """N worlds of one model; every quantity a torch tensor ``[N, ...]`` on ``device``.

    Reads: ``sim.qpos``, ``sim.qvel``, ``sim.data["xpos"]``, ``sim.sensor("name")`` ... (the fields named at
    construction, refreshed by every ``step``/``reset``). Writes: ``sim.ctrl``, ``sim.xfrc_applied`` (applied by the
    next ``step``). Per-world parameters: ``sim.params[name]`` (read) and :meth:`set_params` (write).
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        num_worlds: int,
        device: torch.device | str = "cpu",
        decimation: int = 1,
        fields: tuple[str, ...] = (),
        params: tuple[str, ...] = (),
        cfg: SimConfig | None = None,
    ) -> None:
        cfg = cfg or SimConfig()
        if num_worlds < 1:
            raise ValueError(f"num_worlds must be >= 1, got {num_worlds}")
        if decimation < 1:
            raise ValueError(f"decimation must be >= 1, got {decimation}")
        for name in fields:
            if name not in DATA_FIELDS:
                raise ValueError(f"unknown data field '{name}'; available: {sorted(DATA_FIELDS)}")
        for name in params:
            if name not in PARAM_FIELDS:
                raise ValueError(f"parameter '{name}' cannot vary per world; allowed: {sorted(PARAM_FIELDS)}")
        self.model = model
        self.num_worlds = num_worlds
        self.device = torch.device(device)
        self.decimation = decimation
        self.dt = float(model.opt.timestep) * decimation
        self.fields = tuple(dict.fromkeys(("qpos", "qvel", *fields)))
        self.param_names = tuple(params)
        self.backend_name = resolve_backend(cfg.backend, self.device)
        if cfg.solver:
            model.opt.solver = SOLVERS[cfg.solver]
        if cfg.cone:
            model.opt.cone = CONES[cfg.cone]
        if self.backend_name == "warp" and model.opt.solver == mujoco.mjtSolver.mjSOL_PGS:
            warnings.warn(
                "the model asks for the PGS solver, which mujoco_warp does not have: the warp backend runs Newton "
                "(set sim.solver='newton' to simulate the cpu backend alike)",
                stacklevel=2,
            )
            model.opt.solver = mujoco.mjtSolver.mjSOL_NEWTON
        args = (model, num_worlds, self.device, decimation, self.fields, params, cfg)
        if self.backend_name == "cpu" and any(name in RNE_POST_FIELDS for name in self.fields):
            # mujoco.batch does not run mj_rnePostConstraint: worlds with their own MjData, stepped by Python threads.
            from tasks.mujoco.cpu_threads_backend import ThreadPoolBackend

            self.backend: Any = ThreadPoolBackend(*args)
        elif self.backend_name == "cpu":
            from tasks.mujoco.cpu_backend import BatchBackend

            self.backend = BatchBackend(*args)
        else:
            from tasks.mujoco.warp_backend import WarpBackend

            self.backend = WarpBackend(*args)
        self.data: dict[str, torch.Tensor] = self.backend.data
        self.params: dict[str, torch.Tensor] = self.backend.params
        self.active_worlds: np.ndarray | None = None
        """Host ids of the worlds :meth:`step` must advance; None: all. A hint for evaluation (``evaluate_grid``):
        once a world's episode no longer counts, its physics is wasted work. The cpu backend (``mujoco.batch``) then
        steps only these worlds and leaves the others as they are; the others step every world regardless."""
        self.dtype = self.data["qpos"].dtype
        self._site_dofs: dict[int, tuple[int, torch.Tensor]] = {}  # site -> (root body, dofs that move it), cached
        self._mass_index: tuple[torch.Tensor, torch.Tensor] | None = None  # (row, column) of each entry of M

    # --- state -------------------------------------------------------------------------------------------------------

    @property
    def qpos(self) -> torch.Tensor:
        return self.data["qpos"]

    @property
    def qvel(self) -> torch.Tensor:
        return self.data["qvel"]

    @property
    def ctrl(self) -> torch.Tensor:
        """Controls ``[N, nu]`` applied by the next :meth:`step` (write into it)."""
        return self.backend.inputs["ctrl"]

    @property
    def xfrc_applied(self) -> torch.Tensor:
        """Cartesian forces/torques on bodies ``[N, nbody, 6]`` applied by the next :meth:`step`."""
        self.backend.use_input("xfrc_applied")
        return self.backend.inputs["xfrc_applied"]

    def sensor(self, name: str) -> torch.Tensor:
        """Readings ``[N, dim]`` of the named MuJoCo sensor (needs the ``sensordata`` field)."""
        sensor_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SENSOR, name)
        if sensor_id < 0:
            names = [self.model.sensor(i).name for i in range(self.model.nsensor)]
            raise KeyError(f"no sensor named '{name}' in the model; sensors: {names}")
        if "sensordata" not in self.data:
            raise KeyError("sensor readings need the 'sensordata' field: add it to the simulator's fields")
        adr, dim = int(self.model.sensor_adr[sensor_id]), int(self.model.sensor_dim[sensor_id])
        return self.data["sensordata"][:, adr : adr + dim]

    def body_id(self, name: str) -> int:
        body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
        if body < 0:
            names = [self.model.body(i).name for i in range(self.model.nbody)]
            raise KeyError(f"no body named '{name}' in the model; bodies: {names}")
        return body

    def geom_id(self, name: str) -> int:
        geom = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, name)
        if geom < 0:
            names = [self.model.geom(i).name for i in range(self.model.ngeom)]
            raise KeyError(f"no geom named '{name}' in the model; geoms: {names}")
        return geom

    def site_id(self, name: str) -> int:
        site = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, name)
        if site < 0:
            names = [self.model.site(i).name for i in range(self.model.nsite)]
            raise KeyError(f"no site named '{name}' in the model; sites: {names}")
        return site

    # --- Cartesian quantities (controllers/impedance.py) -------------------------------------------------------------

    def _require(self, names: tuple[str, ...], what: str) -> None:
        missing = [name for name in names if name not in self.data]
        if missing:
            raise KeyError(
                f"{what} needs the fields {missing}: add them (or CARTESIAN_FIELDS) to the simulator's fields"
            )

    def site_pose(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """World position ``[N, 3]`` and orientation ``[N, 3, 3]`` (columns: the site's axes) of the named site."""
        self._require(("site_xpos", "site_xmat"), "site_pose")
        site = self.site_id(name)
        return self.data["site_xpos"][:, site], self.data["site_xmat"][:, site].unflatten(-1, (3, 3))

    def site_jacobian(self, name: str) -> torch.Tensor:
        """Jacobian ``[N, 6, nv]`` of the named site: rows 0-2 map q̇ to its linear velocity, rows 3-5 to its angular
        velocity, both in the world frame (MuJoCo's ``mj_jacSite``: jacp over jacr)."""
        self._require(("site_xpos", "cdof", "subtree_com"), "site_jacobian")
        site = self.site_id(name)
        if site not in self._site_dofs:
            self._site_dofs[site] = self._moving_dofs(int(self.model.site_bodyid[site]))
        root, moves = self._site_dofs[site]
        cdof = self.data["cdof"]  # [N, nv, 6]: (angular, linear) velocity of the root's subtree-COM frame per unit q̇_j
        angular, linear = cdof[..., :3], cdof[..., 3:]
        # mj_jac: jacp_j = cdof_lin_j + cdof_ang_j × (p − subtree_com[root]), jacr_j = cdof_ang_j, for the dofs j that
        # move the site's body (0 for the others).
        offset = (self.data["site_xpos"][:, site] - self.data["subtree_com"][:, root]).unsqueeze(1).expand_as(angular)
        jacp = linear + torch.linalg.cross(angular, offset, dim=-1)
        return (torch.cat((jacp, angular), dim=-1) * moves.unsqueeze(-1)).transpose(1, 2)

    def _moving_dofs(self, body: int) -> tuple[int, torch.Tensor]:
        """The root body of ``body``'s tree and the mask ``[nv]`` of the dofs of ``body`` and its ancestors."""
        root, chain = int(self.model.body_rootid[body]), [body]
        while chain[-1] > 0:
            chain.append(int(self.model.body_parentid[chain[-1]]))
        moves = np.isin(np.asarray(self.model.dof_bodyid), chain)
        return root, torch.as_tensor(moves, dtype=self.dtype, device=self.device)

    @property
    def qfrc_bias(self) -> torch.Tensor:
        """Bias forces ``[N, nv]``, C(q, q̇) = gravity + Coriolis + centrifugal (MuJoCo's ``qfrc_bias``): what a
        torque-controlled arm adds to hold its weight."""
        self._require(("qfrc_bias",), "qfrc_bias")
        return self.data["qfrc_bias"]

    def mass_matrix(self) -> torch.Tensor:
        """Joint-space inertia ``[N, nv, nv]`` (armature included; MuJoCo's ``mj_fullM``), as a new dense tensor."""
        self._require(("M",), "mass_matrix")
        if self._mass_index is None:
            # CSR lower triangle: row i holds M_rownnz[i] entries from M_rowadr[i], in columns M_colind.
            m = self.model
            rows = np.repeat(np.arange(m.nv), np.asarray(m.M_rownnz))
            self._mass_index = (
                torch.as_tensor(rows, device=self.device),
                torch.as_tensor(m.M_colind, device=self.device),
            )
        rows, cols = self._mass_index
        lower = self.data["M"]
        dense = lower.new_zeros(lower.shape[0], self.model.nv, self.model.nv)
        dense[:, cols, rows] = lower  # the upper triangle by symmetry, then the lower (the diagonal written twice)
        dense[:, rows, cols] = lower
        return dense

    # --- dynamics ----------------------------------------------------------------------------------------------------

    def step(self) -> torch.Tensor:
        """Advance every world by ``decimation`` physics steps; returns ``bool[N]``: the world went unstable.

        A world is unstable when its state became non-finite or MuJoCo flagged a bad state (MuJoCo then resets the world
        itself); every such event is reported once, in the step it happens. The caller resets and counts such worlds.
        """
        return self.backend.step(self.active_worlds)

    def take_counts(self) -> dict[str, torch.Tensor]:
        """Backend events since the last call, as device scalars (no host sync): on warp, ``contact_overflow`` (steps in
        which contacts did not fit a buffer: the pool shared by all worlds -- raise ``sim.nconmax`` -- or a heightfield,
        CCD or EPA buffer)."""
        return self.backend.take_counts()

    def reset(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        """Reset the worlds where ``mask`` to ``(qpos, qvel)`` (rows of other worlds are ignored), as gymnasium does:
        ``mj_resetData`` (controls, forces, warm-start and time cleared), set the state, ``mj_forward``."""
        self.backend.reset(mask.to(self.device), qpos.to(self.device, self.dtype), qvel.to(self.device, self.dtype))

    def set_params(self, name: str, values: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Set a per-world model parameter ``[N, ...]`` where ``mask`` (all worlds if None)."""
        if name not in self.params:
            raise KeyError(f"parameter '{name}' was not declared per-world; declared: {list(self.params)}")
        target = self.params[name]
        values = values.to(self.device, target.dtype).expand_as(target)
        mask = torch.ones(self.num_worlds, dtype=torch.bool, device=self.device) if mask is None else mask
        self.backend.set_params(name, values, mask.to(self.device))

    def default_param(self, name: str) -> torch.Tensor:
        """The model's own value of a parameter (shape after the world dimension)."""
        return torch.as_tensor(np.asarray(getattr(self.model, name)), dtype=self.dtype, device=self.device)

    # --- checkpoints -------------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything the worlds' futures and the task's next observation depend on, as CPU tensors: the integration
        state (``STATE_FIELDS``: positions, velocities, actuator states, solver warm-start, time, inputs), the fields
        the task reads -- saved, not recomputed, since after a step MuJoCo's derived fields describe the state before
        its last substep -- and the per-world parameters (constants derived from them are recomputed on load)."""
        cpu = lambda d: {k: v.detach().to("cpu", copy=True) for k, v in d.items()}  # noqa: E731
        return {
            "backend": self.backend_name,
            "state": cpu(self.backend.state_views()),
            "data": cpu(self.data),
            "params": cpu(self.params),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output: the worlds continue exactly as the saved ones would have (within float32
        rounding if it was saved on the other backend)."""
        views = self.backend.state_views()
        for group, expected in (("state", views), ("data", self.data), ("params", self.params)):
            saved = state.get(group, {})
            for name, tensor in expected.items():
                if name not in saved:
                    raise ValueError(f"simulator state is missing '{name}' ({group}); it holds {sorted(saved)}")
                if tuple(saved[name].shape) != tuple(tensor.shape):
                    raise ValueError(
                        f"simulator state '{name}' has shape {tuple(saved[name].shape)}, this simulator's is "
                        f"{tuple(tensor.shape)}: saved with another model or number of worlds"
                    )
        if state.get("backend") != self.backend_name:
            warnings.warn(
                f"simulator state saved on the {state.get('backend')!r} backend, loaded on {self.backend_name!r}: the "
                "worlds continue from the same state, but not bit for bit",
                stacklevel=2,
            )
        # Parameters first: recomputing derived constants may touch the data fields, which are written last.
        for name, values in state["params"].items():
            if name in self.params:
                self.set_params(name, values)
        self.backend.load_state(state["state"], state["data"])

    def render(
        self, worlds: tuple[int, ...] = (0,), width: int = 640, height: int = 480, camera: str | None = None
    ) -> np.ndarray:
        """Offscreen RGB frames ``uint8 [len(worlds), H, W, 3]`` of the chosen worlds' current states."""
        from tasks.mujoco.render import WorldRenderer

        key = (width, height, camera)
        if getattr(self, "_renderer_key", None) != key:
            self._renderer = WorldRenderer(self.model, width, height, camera)
            self._renderer_key = key
        return self._renderer.render(self.qpos, self.qvel, worlds)

    def close(self) -> None:
        self.backend.close()
