"""MuJoCo simulation layer: the simulator facade and its cpu (MuJoCo C) and warp (MuJoCo Warp) backends.

The ``tasks`` package chooses a headless OpenGL platform (EGL) before anything here imports mujoco.
"""
