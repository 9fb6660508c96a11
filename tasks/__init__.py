"""Batched environments: pure-torch tasks, MuJoCo simulation layer, robots, wrappers."""

import ctypes.util
import os
import sys

# Offscreen rendering without a display: MuJoCo picks its OpenGL platform when it is first imported, so choose EGL
# (headless, hardware or Mesa) before any task module imports mujoco, unless the user chose one. Only where libEGL
# exists: MuJoCo imports the chosen platform's library eagerly, and a missing one breaks `import mujoco` itself, not
# just rendering (tasks/mujoco/render.py then names what to install).
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and ctypes.util.find_library("EGL"):
    os.environ.setdefault("MUJOCO_GL", "egl")
