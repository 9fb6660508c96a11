"""Scripted controllers of the arm tasks (``rsl-rl record-demos --source scripted``): each acts on the ``policy``
observation batch alone, without state between calls, and returns SERL's normalised action [N, 6].

The ``policy`` layout (tasks/manipulation/arm_task.py): ee position [0:3], orientation (6-D) [3:9], twist [9:15],
wrist force [15:18], then the task's terms from 18. Every controller also turns the tool back to pointing down
(a proportional step on the rotation vector of R·R_downᵀ). Success rates measured over 64 episodes are in
tests/tasks/test_manipulation.py.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tensordict import TensorDict

from controllers.impedance import so3_log
from rsl_rl.env import Env

TASK = 18  # first task term of the policy group


def _rotation(rot6: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [N, 3, 3] from the 6-D code (its columns are orthonormal already)."""
    x, y = rot6[:, :3], rot6[:, 3:6]
    return torch.stack([x, y, torch.linalg.cross(x, y, dim=-1)], dim=-1)


def _action(env: Env, obs: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """The action [N, 6] that moves the ee by ``step`` [N, 3] (m) and turns the tool towards pointing down."""
    cfg = env.cfg  # pyright: ignore[reportAttributeAccessIssue]
    down = env.down.to(obs.dtype)  # pyright: ignore[reportAttributeAccessIssue]
    tilt = so3_log(_rotation(obs[:, 3:9]) @ down.T)  # R R_downᵀ: the rotation that turned the tool away from down
    translation = step / cfg.pos_scale
    rotation = -0.8 * tilt / cfg.rot_scale
    return torch.cat([translation, rotation], dim=-1).clamp(-1.0, 1.0)


def reach_controller(env: Env) -> Callable[[TensorDict], torch.Tensor]:
    """Move straight to the target (the task term ``target − ee``), at most 2 cm per step."""

    def act(obs: TensorDict) -> torch.Tensor:
        policy = obs["policy"]
        return _action(env, policy, policy[:, TASK : TASK + 3])

    return act


def peg_controller(env: Env) -> Callable[[TensorDict], torch.Tensor]:
    """Above the hole at 1 cm over its top, align the tip with its axis within 0.8 mm, then descend; a tip that lands
    on the rim (below the top but off the axis) rises back to the approach height and realigns."""
    cfg = env.cfg  # pyright: ignore[reportAttributeAccessIssue]
    opening = 0.01 + cfg.clearance

    def act(obs: TensorDict) -> torch.Tensor:
        policy = obs["policy"]
        to_hole = policy[:, TASK : TASK + 3]  # hole top centre − tip
        velocity = policy[:, 9:11]  # the tip's horizontal velocity
        # Aim where the tip will settle: the error less the distance its current velocity carries it in 0.05 s.
        lateral = to_hole[:, :2] - 0.05 * velocity
        height = -to_hole[:, 2]  # tip above the fixture's top
        off_axis = to_hole[:, :2].abs().amax(dim=-1)
        aligned = (off_axis < 6e-4) & (velocity.abs().amax(dim=-1) < 1e-2)
        inside = (height < -0.001) & (off_axis < opening)  # on the rim the tip rests above the top
        # Aligned: step down 3 mm at a time (a faster descent drags the tip sideways by ~2 mm through the arm's coupled
        # dynamics); inside: push down at full speed.
        entry = torch.full_like(height, -0.003)
        approach = (0.004 - height).clamp(-0.02, 0.02)  # hover 4 mm above the top
        dz = torch.where(inside, torch.full_like(height, -0.02), torch.where(aligned, entry, approach))
        return _action(env, policy, torch.cat([lateral, dz.unsqueeze(-1)], dim=-1))

    return act


def push_controller(env: Env) -> Callable[[TensorDict], torch.Tensor]:
    """Rise, move above the point behind the block on the line from the goal through the block, descend to the
    block's mid-height, push along the line (correcting sideways drift) until the block is in the goal region; when the
    pusher leaves the line, start over (rise first, so it never sweeps across the block)."""
    push_z, high_z = 0.115, 0.17  # tip heights: 1.5 cm above the table (the block's lower half), above the block
    standoff = 0.05  # behind the block's centre: its half-diagonal (3.5 cm) + the pusher's half-width + 5 mm

    def act(obs: TensorDict) -> torch.Tensor:
        policy = obs["policy"]
        ee = policy[:, :3]
        to_block = policy[:, TASK : TASK + 3]
        to_goal = policy[:, TASK + 9 : TASK + 11]  # goal − block (x-y)
        direction = to_goal / to_goal.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        rel = -to_block[:, :2]  # ee − block (x-y)
        along = (rel * direction).sum(-1, keepdim=True)
        lateral = rel - along * direction
        behind = -standoff * direction - rel  # from the ee to the point behind the block
        low = ee[:, 2:] < push_z + 0.01
        high = ee[:, 2:] > high_z - 0.01
        in_line = (lateral.norm(dim=-1, keepdim=True) < 0.01) & (along < -0.03)
        pushing = in_line & low
        at_behind = behind.norm(dim=-1, keepdim=True) < 0.008
        push_step = direction * to_goal.norm(dim=-1, keepdim=True).clamp(max=0.02) - lateral
        travel = torch.where(high | at_behind, behind, torch.zeros_like(behind))
        xy = torch.where(pushing, push_step, travel)
        z = torch.where(
            pushing | at_behind, torch.full_like(low, push_z, dtype=ee.dtype), torch.full_like(ee[:, 2:], high_z)
        )
        return _action(env, policy, torch.cat([xy, (z - ee[:, 2:]).clamp(-0.02, 0.02)], dim=-1))

    return act
