"""Offscreen rendering of MuJoCo worlds and the video of `rsl-rl play --video`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from rsl_rl.cli.main import main
from tasks.mujoco.render import write_video
from tasks.rrls.hopper import HopperCfg, HopperEnv


def read_frames(path: Path) -> list[np.ndarray]:
    # Iterate: the reader reports an unknown (infinite) length, so list() would try to preallocate it.
    return list(imageio.get_reader(str(path), format="FFMPEG").iter_data())


def test_frames_show_the_chosen_worlds() -> None:
    env = HopperEnv(HopperCfg(num_envs=3))
    qpos = env.init_qpos.expand(3, -1).clone()
    qpos[1, 2] = 1.5  # world 1: torso tilted far over
    env.sim.reset(torch.ones(3, dtype=torch.bool), qpos, torch.zeros_like(env.sim.qvel))
    frames = env.render((0, 1, 2), width=160, height=120)
    assert frames.shape == (3, 120, 160, 3) and frames.dtype == np.uint8
    assert frames.std() > 10  # an image, not a blank buffer
    assert np.array_equal(frames[0], frames[2])  # same pose, same picture
    assert np.abs(frames[0].astype(int) - frames[1].astype(int)).mean() > 2.0  # different pose


def test_write_video_round_trip(tmp_path: Path) -> None:
    frames = [np.full((64, 96, 3), i * 20, dtype=np.uint8) for i in range(10)]
    path = write_video(tmp_path / "clip.mp4", frames, fps=25)
    read = read_frames(path)
    assert len(read) == 10 and read[0].shape == (64, 96, 3)


@pytest.mark.slow
def test_play_writes_a_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    args = ["train", "--task", "hopper", "--run-dir", str(run), "--max-iterations", "1", "--num-envs", "4"]
    assert main([*args, "--logger", "none"]) == 0
    video = tmp_path / "hopper.mp4"
    assert (
        main(
            [
                "play",
                "--checkpoint",
                str(run),
                "--num-envs",
                "2",
                "--video",
                str(video),
                "--video-size",
                "96",
                "72",
                "--video-worlds",
                "2",
            ]
        )
        == 0
    )
    frames = read_frames(video)
    assert len(frames) > 5 and frames[0].shape == (72, 192, 3)
    assert "wrote" in capsys.readouterr().out


def test_play_video_of_a_task_that_cannot_render(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert (
        main(["train", "--task", "pendulum", "--run-dir", str(run), "--max-iterations", "1", "--logger", "none"]) == 0
    )
    assert main(["play", "--checkpoint", str(run), "--video", str(tmp_path / "p.mp4")]) == 2
    assert "cannot render" in capsys.readouterr().err


@pytest.mark.parametrize("egl_found", [True, False])
def test_egl_is_chosen_only_where_libegl_exists(egl_found: bool) -> None:
    """Headless, the tasks package picks EGL for MuJoCo where libEGL exists; where it does not, it leaves MUJOCO_GL
    alone, because MuJoCo loads the chosen platform at import and a missing libEGL would break `import mujoco`."""
    patch = "" if egl_found else "import ctypes.util; ctypes.util.find_library = lambda name: None; "
    code = patch + "import os, tasks, mujoco; print(os.environ.get('MUJOCO_GL'))"
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ("egl" if egl_found else "None")
