"""Offscreen frames of chosen worlds, and MP4 files of them.

Rendering works on a host copy of a world's state (``qpos``, ``qvel`` → ``mj_forward``), so it serves both backends
alike. Headless Linux uses EGL where libEGL exists (set in ``tasks/__init__.py``); ``MUJOCO_GL=osmesa`` selects
software rendering.
"""

# pyright: reportAttributeAccessIssue=false
# (mujoco's compiled modules are re-exported with `import *`, which pyright cannot follow)

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import mujoco
import numpy as np
import torch


class WorldRenderer:
    """Renders worlds of one model from a camera that tracks a body (or from a named model camera)."""

    def __init__(self, model: mujoco.MjModel, width: int = 640, height: int = 480, camera: str | None = None) -> None:
        try:
            self.renderer = mujoco.Renderer(model, height, width)
        except Exception as err:  # noqa: BLE001 -- MuJoCo raises several types for a missing OpenGL platform
            raise RuntimeError(
                f"MuJoCo could not create an offscreen OpenGL context (MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}): "
                f"{err}. Install EGL (Debian: libegl1 libgl1-mesa-dri) or OSMesa (libosmesa6 with MUJOCO_GL=osmesa)."
            ) from err
        self.model = model
        self.data = mujoco.MjData(model)
        if camera is not None:
            camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
            if camera_id < 0:
                names = [model.camera(i).name for i in range(model.ncam)]
                raise KeyError(f"no camera named '{camera}' in the model; cameras: {names}")
            self.camera: mujoco.MjvCamera | int = camera_id
        else:
            cam = mujoco.MjvCamera()
            cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
            cam.trackbodyid = 1 if model.nbody > 1 else 0
            cam.distance = 2.5 * self._robot_size()
            cam.elevation = -15.0
            cam.azimuth = 90.0  # side view: the planar robots move along x
            self.camera = cam

    def _robot_size(self) -> float:
        """Radius of the robot (geoms on non-world bodies) around its root body in the default pose."""
        mujoco.mj_forward(self.model, self.data)
        robot = self.model.geom_bodyid > 0
        if not robot.any():
            return float(self.model.stat.extent)
        root = self.data.xpos[1]
        reach = np.linalg.norm(self.data.geom_xpos[robot] - root, axis=1) + self.model.geom_rbound[robot]
        return max(float(reach.max()), 0.5)

    def render(self, qpos: torch.Tensor, qvel: torch.Tensor, worlds: Sequence[int]) -> np.ndarray:
        """``uint8 [len(worlds), H, W, 3]`` frames of the given worlds' states."""
        frames = []
        qpos_np, qvel_np = qpos.detach().cpu().double().numpy(), qvel.detach().cpu().double().numpy()
        for i in worlds:
            self.data.qpos[:] = qpos_np[i]
            self.data.qvel[:] = qvel_np[i]
            mujoco.mj_forward(self.model, self.data)
            self.renderer.update_scene(self.data, camera=self.camera)
            frames.append(self.renderer.render().copy())
        return np.stack(frames)

    def close(self) -> None:
        self.renderer.close()


def write_video(path: str | os.PathLike[str], frames: Sequence[np.ndarray], fps: float) -> Path:
    """Write ``uint8 [H, W, 3]`` frames as an H.264 MP4 (imageio + its bundled ffmpeg)."""
    try:
        import imageio.v3 as iio
    except ImportError as err:
        raise ImportError("videos need imageio and imageio-ffmpeg: pip install 'rsl-rl-forge[mujoco]'") from err
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.stack(frames), fps=fps, codec="libx264", macro_block_size=8)
    return path
