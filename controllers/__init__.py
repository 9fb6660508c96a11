"""Low-level control laws on batched tensors (joint PD, actuator models, Cartesian impedance).

Every law works on [num_envs, ...] tensors on any device and dtype, imports torch only, and never synchronises with
the host, so the same code runs inside the training rollout and, where a robot needs it, at deployment. A legged task
chains them per policy step: `ActionDelay` (latency) -> `JointPD.targets` (action to joint targets) and, per physics
step, `JointPD.torque` (PD law) -> `DCMotor.apply` (torque–speed and effort limits). A manipulator task runs
`CartesianImpedance` at physics rate toward targets that `target_from_action` moves at the policy rate (SERL).
"""

from controllers.actuator import ActionDelay, DCMotor
from controllers.impedance import CartesianImpedance, ImpedanceConfig, target_from_action
from controllers.joint_pd import JointPD

__all__ = ["ActionDelay", "CartesianImpedance", "DCMotor", "ImpedanceConfig", "JointPD", "target_from_action"]
