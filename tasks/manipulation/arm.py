"""The 7-DoF arm of the manipulation tasks: its MJCF files, the end effectors it carries, and its constants.

``arm.xml`` is the arm with a peg on its flange, on a table; ``gripper.xml`` a two-finger gripper that
:func:`arm_spec` puts on the flange instead. A task edits the returned :class:`mujoco.MjSpec` (adds its objects, holes,
sensors) and compiles it.
"""

# pyright: reportAttributeAccessIssue=false
# (mujoco's compiled modules are re-exported with `import *`, which pyright cannot follow)

from __future__ import annotations

import math
from pathlib import Path

import mujoco

ARM_XML = Path(__file__).with_name("arm.xml")
GRIPPER_XML = Path(__file__).with_name("gripper.xml")
END_EFFECTORS = ("peg", "gripper")
ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
# Franka's "ready" posture: the flange 0.307 m in front of the base, 0.59 m up, pointing down (the keyframe "home").
HOME_QPOS = (0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4)
TORQUE_LIMITS = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
EE_SITE = "ee"


def arm_spec(end_effector: str = "peg") -> mujoco.MjSpec:
    """The arm model as an editable spec, with a ``peg`` or a ``gripper`` on its flange.

    Both have the site ``ee`` (the peg's tip; the point between the fingertips) and the arm's seven joints and motors
    first (qpos[:7], ctrl[:7]). The gripper adds the joints ``gripper/finger_left`` and ``gripper/finger_right`` and
    the position actuator ``gripper/fingers`` (ctrl = opening per finger, 0-0.04 m)."""
    if end_effector not in END_EFFECTORS:
        raise ValueError(f"end_effector={end_effector!r}; allowed: {', '.join(map(repr, END_EFFECTORS))}")
    spec = mujoco.MjSpec.from_file(str(ARM_XML))
    if end_effector == "gripper":
        spec.delete(spec.body("peg"))  # with the peg's `ee` site
        spec.attach(mujoco.MjSpec.from_file(str(GRIPPER_XML)), site=spec.site("flange"), prefix="gripper/")
        spec.site("gripper/ee").name = EE_SITE
    return spec


def load_arm(end_effector: str = "peg") -> mujoco.MjModel:
    """The compiled arm model (see :func:`arm_spec`)."""
    return arm_spec(end_effector).compile()
