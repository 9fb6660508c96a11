"""Pendulum seen from the front: the policy observes small rendered images, the critic the state (issue 14).

Dynamics, reward and episodes are :mod:`tasks.classic.pendulum`'s (gymnasium ``Pendulum-v1``). Observation groups:

* ``policy``: ``[N, frames, size, size]`` float images in [0, 1]: the rod as a bright anti-aliased segment from the
  pivot at the image centre, drawn as gymnasium draws it (θ = 0 points up, θ > 0 turns it counter-clockwise, to the
  left). Channel 0 is the current frame, channel k the frame k steps earlier.
* ``critic``: ``(cos θ, sin θ, θ̇)``, the state task's observation (asymmetric actor-critic: the value function need
  not be learned from pixels, which makes learning several times faster).

Observability: one frame shows the angle but not the angular velocity, which a swing-up needs. Two frames show it
as their difference. The earlier frames are rendered from the current state: the integrator sets
θ_t = θ_{t−1} + θ̇_t·dt, so θ_{t−k} = θ_t − k·θ̇_t·dt is exact for k = 1 (and the constant-velocity extrapolation
for k > 1). This needs no frame buffer, no reset bookkeeping, and an episode's first observation already carries its
initial velocity. The anti-aliasing matters: at 24 px a slow pendulum moves its tip by a fraction of a pixel per step,
visible only as a change of intensity.

Rendering is batched torch (every env and frame at once, on the env's device): each pixel's distance to the rod
segment, mapped to intensity by a one-pixel ramp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDict

from tasks.classic.pendulum import PendulumCfg, PendulumEnv


@dataclass
class PixelPendulumCfg(PendulumCfg):
    """Pendulum-v1 with image observations for the policy."""

    image_size: int = 24
    """Height and width of the rendered image (pixels)."""
    frames: int = 2
    """Frames stacked as channels, newest first (1: the velocity is unobservable)."""
    rod_length: float = 0.4
    """Rod length as a fraction of the image size (the pivot is at the centre: ≤ 0.5 stays inside)."""
    rod_width: float = 2.5
    """Rod width (pixels)."""


def render_rods(angles: torch.Tensor, size: int, length: float, width: float) -> torch.Tensor:
    """Images ``[..., size, size]`` of rods at ``angles [...]`` (θ = 0 up, θ > 0 counter-clockwise), float32 in [0, 1].

    A pixel's intensity is 1 within ``width / 2`` of the segment pivot → tip and falls linearly to 0 over one more
    pixel, so sub-pixel motion changes the image.
    """
    centers = torch.arange(size, device=angles.device, dtype=torch.float32) + 0.5 - size / 2
    rows, cols = torch.meshgrid(centers, centers, indexing="ij")
    theta = angles.float().unsqueeze(-1).unsqueeze(-1)
    # Tip in image coordinates (rows grow downward): up at θ = 0, left for θ > 0.
    tip_col = -torch.sin(theta) * (length * size)
    tip_row = -torch.cos(theta) * (length * size)
    # Projection of each pixel onto the segment, clamped to its ends: t = clamp(p·tip / |tip|², 0, 1).
    t = ((rows * tip_row + cols * tip_col) / (length * size) ** 2).clamp(0.0, 1.0)
    distance = torch.hypot(rows - t * tip_row, cols - t * tip_col)
    return (width / 2 + 0.5 - distance).clamp(0.0, 1.0)


class PixelPendulumEnv(PendulumEnv):
    """Batched Pendulum-v1 observed through rendered images (``policy``) and the state (``critic``)."""

    cfg: PixelPendulumCfg

    def __init__(self, cfg: PixelPendulumCfg, device: torch.device | str = "cpu", seed: int = 0) -> None:
        if cfg.image_size < 4 or cfg.frames < 1:
            raise ValueError(f"image_size must be >= 4 and frames >= 1, got {cfg.image_size}, {cfg.frames}")
        if not 0.0 < cfg.rod_length <= 0.5:
            raise ValueError(f"rod_length={cfg.rod_length}; allowed: (0, 0.5] (a fraction of the image size)")
        super().__init__(cfg, device, seed)

    def init_buffers(self) -> None:
        super().init_buffers()
        # Frame k shows θ − k·θ̇·dt (see the module docstring).
        self.frame_lags = torch.arange(self.cfg.frames, device=self.device, dtype=self.dtype) * self.cfg.dt

    def observe(self) -> TensorDict:
        theta, theta_dot = self.state[:, 0], self.state[:, 1]
        angles = theta.unsqueeze(-1) - theta_dot.unsqueeze(-1) * self.frame_lags
        c = self.cfg
        images = render_rods(angles, c.image_size, c.rod_length, c.rod_width)
        state = torch.stack([torch.cos(theta), torch.sin(theta), theta_dot], dim=-1).float()
        return TensorDict({"policy": images, "critic": state}, batch_size=[self.num_envs], device=self.device)

    def deployment_spec(self) -> dict[str, Any]:
        c = self.cfg
        spec = super().deployment_spec()
        spec["observation"] = {
            # One term: the flat export input holds the image row-major, [frames, height, width].
            "policy": [(f"image[{c.frames},{c.image_size},{c.image_size}]", c.frames * c.image_size**2)],
            "critic": [("cos_theta", 1), ("sin_theta", 1), ("theta_dot", 1)],
        }
        return spec
