"""What the simulator facade and its backends share: the simulation settings (:class:`SimConfig`) and the tables of
fields a task may read, write and vary per world. Its own module so that imports point one way (``sim`` imports the
backends, the backends import this).
"""

# pyright: reportAttributeAccessIssue=false
# (mujoco's compiled modules are re-exported with `import *`, which pyright cannot follow)

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mujoco

# Data fields a task may read: name -> shape after the world dimension, as a function of the model.
DATA_FIELDS: dict[str, Any] = {
    "qpos": lambda m: (m.nq,),
    "qvel": lambda m: (m.nv,),
    "qacc": lambda m: (m.nv,),
    "act": lambda m: (m.na,),
    "xpos": lambda m: (m.nbody, 3),
    "xquat": lambda m: (m.nbody, 4),
    "xipos": lambda m: (m.nbody, 3),
    "cvel": lambda m: (m.nbody, 6),
    "cinert": lambda m: (m.nbody, 10),
    "cfrc_ext": lambda m: (m.nbody, 6),
    "cfrc_int": lambda m: (m.nbody, 6),
    "subtree_com": lambda m: (m.nbody, 3),
    "qfrc_actuator": lambda m: (m.nv,),
    "actuator_force": lambda m: (m.nu,),
    "sensordata": lambda m: (m.nsensordata,),
    # Read by the simulator's Cartesian accessors (site Jacobian, bias forces, mass matrix); shapes as in MjData.
    "site_xpos": lambda m: (m.nsite, 3),
    "site_xmat": lambda m: (m.nsite, 9),  # row-major 3x3
    "cdof": lambda m: (m.nv, 6),  # each dof's motion axis, (angular, linear), about the root's subtree centre of mass
    "qfrc_bias": lambda m: (m.nv,),  # C(q, q̇): gravity, Coriolis and centrifugal forces
    "M": lambda m: (m.nC,),  # joint-space inertia (armature included), lower triangle in CSR (M_rowadr, M_colind)
}
# Fields a task writes before each step.
INPUT_FIELDS: dict[str, Any] = {
    "ctrl": lambda m: (m.nu,),
    "xfrc_applied": lambda m: (m.nbody, 6),
}
# Fields computed only by mj_rnePostConstraint (gymnasium calls it after every step).
RNE_POST_FIELDS = ("cfrc_ext", "cfrc_int")
# Model parameters that can differ per world: name -> shape after the world dimension.
PARAM_FIELDS: dict[str, Any] = {
    "body_mass": lambda m: (m.nbody,),
    "body_inertia": lambda m: (m.nbody, 3),
    "body_ipos": lambda m: (m.nbody, 3),
    "geom_friction": lambda m: (m.ngeom, 3),
    "actuator_gainprm": lambda m: (m.nu, 10),
    "actuator_biasprm": lambda m: (m.nu, 10),
    "dof_damping": lambda m: (m.nv,),
    "dof_armature": lambda m: (m.nv,),
    "dof_frictionloss": lambda m: (m.nv,),
}
BACKENDS = ("cpu", "warp")
CONES = {"pyramidal": mujoco.mjtCone.mjCONE_PYRAMIDAL, "elliptic": mujoco.mjtCone.mjCONE_ELLIPTIC}
SOLVERS = {"pgs": mujoco.mjtSolver.mjSOL_PGS, "cg": mujoco.mjtSolver.mjSOL_CG, "newton": mujoco.mjtSolver.mjSOL_NEWTON}


@dataclass
class SimConfig:
    """How the worlds are simulated (not what they contain)."""

    backend: str = "auto"
    """``cpu`` (MuJoCo C in threads), ``warp`` (MuJoCo Warp) or ``auto`` (warp on CUDA, cpu otherwise)."""
    nthread: int = 0
    """Threads of the cpu backend; 0 = all available cores."""
    nconmax: int = 0
    """Warp: contacts per world to allocate, pooled over all worlds (0 = mujoco_warp's default). An overflowing pool
    drops contacts: logged per iteration as ``contact_overflow``."""
    njmax: int = 0
    """Warp: constraint rows per world to allocate (0 = mujoco_warp's default). A world that needs more is reset and
    counted like a world whose physics went unstable."""
    cuda_graph: bool = True
    """Warp on CUDA: capture the decimated step as a CUDA graph."""
    solver: str = ""
    """Constraint solver: ``pgs``, ``cg`` or ``newton``; empty = the model's own. mujoco_warp has no PGS: a PGS model
    runs Newton there (with a warning), so ``newton`` makes both backends simulate alike."""
    cone: str = ""
    """Friction cone: ``pyramidal`` or ``elliptic``; empty = the model's own. With pyramidal cones the backends differ
    where a capsule stands steeper than 60 degrees on a plane: mujoco_warp then takes a fixed first tangent, MuJoCo C
    the capsule's axis, which turns the friction pyramid (Ant's feet). Elliptic cones are the same in every
    direction."""

    def __post_init__(self) -> None:
        if self.backend not in (*BACKENDS, "auto"):
            raise ValueError(f"sim.backend={self.backend!r}; allowed: 'auto', 'cpu', 'warp'")
        if self.solver and self.solver not in SOLVERS:
            raise ValueError(f"sim.solver={self.solver!r}; allowed: '' (the model's), {', '.join(map(repr, SOLVERS))}")
        if self.cone and self.cone not in CONES:
            raise ValueError(f"sim.cone={self.cone!r}; allowed: '' (the model's), {', '.join(map(repr, CONES))}")
        if self.nthread < 0:
            raise ValueError(f"sim.nthread must be >= 0, got {self.nthread}")


# Per-world parameters that mj_setConst reads. MuJoCo derives constants from them at qpos0 when it compiles a model;
# after a per-world change those constants are recomputed for that world (MuJoCo's batch documentation and
# mujoco_warp's set_const ask for it): the subtree masses, and the inverse weights that scale contact softness.
SETCONST_PARAMS = ("body_mass", "body_inertia", "body_ipos", "dof_armature")
# The constants mj_setConst derives from them (a model keeps those it has: no tendons, no tendon_invweight0).
CONST_FIELDS = (
    "body_subtreemass",
    "dof_M0",
    "dof_invweight0",
    "body_invweight0",
    "tendon_invweight0",
    "actuator_acc0",
    "cam_poscom0",
    "light_poscom0",
)
# The integration state of a world (mjSTATE_INTEGRATION without what our tasks never use: history, equality flags,
# user data, plugin state): with the per-world parameters, everything a world's future depends on.
STATE_FIELDS = (
    "time",
    "qpos",
    "qvel",
    "act",
    "qacc_warmstart",
    "ctrl",
    "qfrc_applied",
    "xfrc_applied",
    "mocap_pos",
    "mocap_quat",
)
