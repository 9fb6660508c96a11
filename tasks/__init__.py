"""Batched environments: pure-torch tasks, MuJoCo simulation layer, robots, wrappers."""

import os
import sys

# Offscreen rendering without a display: MuJoCo picks its OpenGL platform when it is first imported, so choose EGL
# (headless, hardware or Mesa) before any task module imports mujoco, unless the user chose one.
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")
