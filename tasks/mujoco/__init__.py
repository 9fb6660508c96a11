"""MuJoCo simulation layer: the simulator facade and its cpu (MuJoCo C) and warp (MuJoCo Warp) backends."""

import os
import sys

# Offscreen rendering without a display: MuJoCo picks its OpenGL platform when it is first imported, so choose EGL
# (headless, hardware or Mesa) before anything imports mujoco, unless the user chose one.
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")
