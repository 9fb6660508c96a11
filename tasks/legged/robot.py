"""Robot description for legged tasks: which MJCF, which joints, gains and limits, which bodies touch the ground.

A robot is a :class:`RobotCfg`; a second robot is a config edit. :func:`build_model` turns it into the ``MjModel`` of
one world: the robot's MJCF (ours, or a MuJoCo Menagerie model found locally) with its actuators, keyframes and ground
removed, then the terrain (plane or heightfield), one torque motor per controlled joint (the control law lives in
``controllers/``, in torch), and MuJoCo contact sensors between the terrain and the feet / the bodies whose contact
ends an episode or is penalised.
"""

# pyright: reportAttributeAccessIssue=false
# (mujoco's compiled modules are re-exported with `import *`, which pyright cannot follow)

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import mujoco
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TERRAIN = "terrain"
"""Name of the ground geom (plane or heightfield) that contact sensors refer to."""
PENALIZED = "contact/penalized/"
"""Prefix of the contact sensors of penalised bodies: ``contact/penalized/<body>/<k>``, one per collision geom."""
# Contact-sensor data spec bit "force" (mjtConDataField) and reduction "netforce" (MuJoCo's contact sensor).
_CONTACT_FORCE, _REDUCE_NETFORCE = 2, 3


@dataclass
class RobotCfg:
    """A legged robot: model file, controlled joints, control gains and limits, contact bodies."""

    name: str = "go1"
    """Robot name (metadata and logs)."""
    mjcf: str = "go1.xml"
    """MJCF file of the robot (no ground needed); ignored when ``menagerie`` is set. A relative path is looked up in
    the working directory, then in ``tasks/legged/`` (the packaged ``go1.xml``), so a config stored in a checkpoint
    still finds the packaged file on another machine or install."""
    menagerie: str = ""
    """``"<robot dir>/<file>.xml"`` of a MuJoCo Menagerie model, loaded from a local checkout (``MENAGERIE_ROOT`` or
    the ``mujoco_menagerie`` cache); never downloaded."""
    base_body: str = "trunk"
    """Floating base body."""
    joint_names: tuple[str, ...] = tuple(
        f"{leg}_{j}_joint" for leg in ("FR", "FL", "RR", "RL") for j in ("hip", "thigh", "calf")
    )
    """Controlled joints, in action order."""
    default_joint_pos: dict[str, float] = field(
        default_factory=lambda: {"L_hip": 0.1, "R_hip": -0.1, "thigh": 0.9, "calf": -1.8}
    )
    """Standing pose: regex on joint names → angle (rad); the first matching pattern wins."""
    init_height: float = 0.30
    """Base height above the ground at reset (m)."""
    stiffness: dict[str, float] = field(default_factory=lambda: {".*": 35.0})
    """PD stiffness Kp (N m/rad) by joint regex."""
    damping: dict[str, float] = field(default_factory=lambda: {".*": 0.5})
    """PD damping Kd (N m s/rad) by joint regex."""
    effort_limit: dict[str, float] = field(default_factory=lambda: {"calf": 35.55, ".*": 23.7})
    """Motor torque limit (N m) by joint regex (Go1: 23.7 hip/thigh, 35.55 knee)."""
    velocity_limit: dict[str, float] = field(default_factory=lambda: {"calf": 20.06, ".*": 30.1})
    """Motor no-load speed (rad/s) by joint regex, for the torque–speed curve."""
    action_scale: float = 0.25
    """Joint target = default + scale · action (rad)."""
    foot_geoms: tuple[str, ...] = ("FR_foot", "FL_foot", "RR_foot", "RL_foot")
    """Foot collision geoms (contact sensing, air time, friction randomisation)."""
    termination_bodies: tuple[str, ...] = ("trunk",)
    """Bodies whose ground contact ends the episode."""
    penalized_bodies: tuple[str, ...] = tuple(
        f"{leg}_{p}" for leg in ("FR", "FL", "RR", "RL") for p in ("thigh", "calf")
    )
    """Bodies whose ground contact is penalised (``undesired_contacts``): every collision geom of the body except the
    feet, named or not (Menagerie leaves collision geoms unnamed, and its feet sit in the calf bodies)."""
    foot_friction: float = 0.8
    """Nominal sliding friction of the feet (the ground's is negligible, so the feet's governs contacts)."""
    self_collisions: bool = False
    """False: robot geoms collide with the ground only (contype 0, conaffinity 1), which is faster (DESIGN.md) and what
    legged_gym does; a Menagerie model's geoms also collide with each other unless this is False."""
    timestep: float = 0.005
    """Physics step (s), set on the model: a Menagerie file keeps MuJoCo's 0.002 s default, which would turn
    ``decimation`` 4 into a 125 Hz policy."""

    def resolve_mjcf(self) -> str:
        """Path of the robot's MJCF file; a clear error when a Menagerie model is not available locally."""
        if not self.menagerie:
            for path in (self.mjcf, os.path.join(HERE, self.mjcf)):  # joining an absolute path gives it back
                if os.path.isfile(path):
                    return path
            raise FileNotFoundError(
                f"robot '{self.name}': MJCF file not found: {self.mjcf} (looked in the working directory and {HERE})"
            )
        roots = [os.environ.get("MENAGERIE_ROOT", ""), os.environ.get("MENAGERIE_CACHE_DIR", "")]
        try:  # the package's own cache, if it has one (no download: only look)
            import mujoco_menagerie  # pyright: ignore[reportMissingImports]

            roots.append(os.path.join(os.path.dirname(str(mujoco_menagerie.__file__)), "menagerie"))
        except ImportError:
            pass
        for root in filter(None, roots):
            path = os.path.join(root, self.menagerie)
            if os.path.isfile(path):
                return path
        looked = list(filter(None, roots))
        raise FileNotFoundError(
            f"robot '{self.name}': Menagerie model '{self.menagerie}' not found locally (looked in {looked}); "
            "set MENAGERIE_ROOT to a mujoco_menagerie checkout (this library never downloads models)"
        )


def menagerie_go1() -> RobotCfg:
    """The Unitree Go1 of MuJoCo Menagerie (``unitree_go1/go1.xml``, found through ``MENAGERIE_ROOT``): the same joints
    and bodies as ours; feet are the sphere geoms ``FR``/``FL``/``RR``/``RL``; collision geoms are unnamed (thighs
    and calves are penalised by body); self-collisions are switched off. Its own options (elliptic cone, impratio 100,
    condim 6 feet) are kept, so it simulates slower than ``go1.xml``. Its feet are soft (solimp 0.015 → 1 over 31 mm):
    standing, they sink ~2 cm and the lower calf capsules graze the ground, so only the thighs are penalised (Isaac
    Lab's choice for Go1)."""
    legs = ("FR", "FL", "RR", "RL")
    return RobotCfg(
        name="go1-menagerie",
        menagerie="unitree_go1/go1.xml",
        foot_geoms=legs,
        penalized_bodies=tuple(f"{leg}_thigh" for leg in legs),
    )


def by_regex(names: tuple[str, ...], table: dict[str, float], what: str) -> np.ndarray:
    """Per-joint values from ``{regex: value}``; the first pattern that matches (``re.search``) wins."""
    values = []
    for name in names:
        match = next((v for pattern, v in table.items() if re.search(pattern, name)), None)
        if match is None:
            raise KeyError(f"no {what} pattern matches joint '{name}'; patterns: {list(table)}")
        values.append(float(match))
    return np.asarray(values)


def build_model(robot: RobotCfg, hfield: tuple[np.ndarray, float, float] | None = None) -> mujoco.MjModel:
    """One world: robot + terrain + motors + contact sensors.

    ``hfield``: ``(heights [rows, cols] in m, horizontal resolution in m, base z)`` of a heightfield terrain centred at
    the origin; ``None`` = flat plane.
    """
    spec = mujoco.MjSpec.from_file(robot.resolve_mjcf())
    spec.option.timestep = robot.timestep
    for actuator in list(spec.actuators):
        spec.delete(actuator)
    for key in list(spec.keys):
        spec.delete(key)
    for geom in list(spec.worldbody.geoms):  # a ground the robot file may bring (a Menagerie scene)
        spec.delete(geom)
    joints = {j.name: j for j in spec.joints}
    for name in robot.joint_names:
        if name not in joints:
            raise KeyError(
                f"robot '{robot.name}': joint '{name}' not in {robot.resolve_mjcf()}; joints: {list(joints)}"
            )
    # The ground: negligible friction, so that each contact's friction (the max of the pair) is the foot's. A checker
    # texture and a light only matter for videos.
    spec.add_texture(
        name="grid", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
        rgb1=[0.25, 0.3, 0.35], rgb2=[0.4, 0.45, 0.5], width=256, height=256,
    )  # fmt: skip
    spec.add_material(name="ground", textures=["", "grid"], texrepeat=[1, 1], texuniform=True)
    spec.worldbody.add_light(pos=[0, 0, 6], dir=[0, 0, -1], type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)
    ground = {"name": TERRAIN, "contype": 1, "conaffinity": 0, "friction": [0.01, 0.005, 0.0001], "condim": 3,
              "material": "ground"}  # fmt: skip
    if hfield is None:
        spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 0.05], **ground)
    else:
        heights, resolution, base = hfield
        rows, cols = heights.shape
        low, high = float(heights.min()), float(heights.max())
        top = max(high - low, 1e-3)
        spec.add_hfield(
            name=TERRAIN, size=[(cols - 1) * resolution / 2, (rows - 1) * resolution / 2, top, base],
            nrow=rows, ncol=cols, userdata=((heights - low) / top).astype(np.float32).ravel().tolist(),
        )  # fmt: skip
        spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_HFIELD, hfieldname=TERRAIN, pos=[0, 0, low], **ground)
    effort = by_regex(robot.joint_names, robot.effort_limit, "effort_limit")
    for name, limit in zip(robot.joint_names, effort, strict=True):
        spec.add_actuator(
            name=name.removesuffix("_joint"), target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT,
            ctrllimited=True, ctrlrange=[-limit, limit],
        )  # fmt: skip
    geoms = {g.name for g in spec.geoms}
    bodies = {b.name: b for b in spec.bodies}
    for geom in robot.foot_geoms:
        if geom not in geoms:
            raise KeyError(f"robot '{robot.name}': geom '{geom}' not found; named geoms: {sorted(filter(None, geoms))}")
        _contact_sensor(spec, f"contact/{geom}", mujoco.mjtObj.mjOBJ_GEOM, geom)
        spec.geom(geom).friction = [robot.foot_friction, 0.005, 0.0001]
    for body in (*robot.termination_bodies, *robot.penalized_bodies):
        if body not in bodies:
            raise KeyError(f"robot '{robot.name}': body '{body}' not found; bodies: {sorted(filter(None, bodies))}")
    for body in robot.termination_bodies:
        _contact_sensor(spec, f"contact/{body}", mujoco.mjtObj.mjOBJ_BODY, body)
    for body in robot.penalized_bodies:
        # One sensor per collision geom (a body sensor would include a foot in the same body); unnamed geoms get a
        # name, which contact sensors need.
        colliding = [g for g in bodies[body].geoms if (g.contype or g.conaffinity) and g.name not in robot.foot_geoms]
        if not colliding:
            raise KeyError(f"robot '{robot.name}': penalised body '{body}' has no collision geom besides the feet")
        for k, geom in enumerate(colliding):
            geom.name = geom.name or f"{body}/collision{k}"
            _contact_sensor(spec, f"{PENALIZED}{body}/{k}", mujoco.mjtObj.mjOBJ_GEOM, geom.name)
    if not robot.self_collisions:
        for geom in spec.geoms:
            if geom.name != TERRAIN and (geom.contype or geom.conaffinity):
                geom.contype, geom.conaffinity = 0, 1  # touches the ground (contype 1), never another robot geom
    return spec.compile()


def penalized_sensors(model: mujoco.MjModel, robot: RobotCfg) -> list[list[str]]:
    """Names of the contact sensors of each penalised body, in ``robot.penalized_bodies`` order."""
    names = [model.sensor(i).name for i in range(model.nsensor)]
    return [[n for n in names if n.startswith(f"{PENALIZED}{body}/")] for body in robot.penalized_bodies]


def _contact_sensor(spec: mujoco.MjSpec, name: str, objtype: mujoco.mjtObj, objname: str) -> None:
    """Net contact force (3, world frame) between ``objname`` and the terrain."""
    spec.add_sensor(
        name=name, type=mujoco.mjtSensor.mjSENS_CONTACT, objtype=objtype, objname=objname,
        reftype=mujoco.mjtObj.mjOBJ_GEOM, refname=TERRAIN, intprm=[_CONTACT_FORCE, _REDUCE_NETFORCE, 1],
    )  # fmt: skip
