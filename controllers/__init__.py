"""Low-level control laws on batched tensors (joint PD, actuator models, Cartesian impedance)."""
