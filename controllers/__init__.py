"""Low-level control laws on batched tensors (joint PD, actuator models, Cartesian impedance).

Every law works on [num_envs, ...] tensors on any device and dtype, imports torch only, and never synchronises with
the host, so the same code runs inside the training rollout and, where a robot needs it, at deployment. A legged task
chains them per policy step: `ActionDelay` (latency) -> `JointPD.targets` (action to joint targets) and, per physics
step, `JointPD.torque` (PD law) -> `DCMotor.apply` (torque–speed and effort limits).
"""

from controllers.actuator import ActionDelay, DCMotor
from controllers.joint_pd import JointPD

__all__ = ["ActionDelay", "DCMotor", "JointPD"]
