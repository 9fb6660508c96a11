"""Reward terms shared by the gymnasium v5 locomotion tasks (plain functions ``term(env) -> Tensor[N]``)."""

from __future__ import annotations

from typing import Any

import torch


def forward_velocity(env: Any) -> torch.Tensor:
    """Δx / dt of the tracked position between the start and the end of the step."""
    return (env.x_after() - env.x_before) / env.step_dt


def alive(env: Any) -> torch.Tensor:
    """1 while the robot is healthy (gymnasium's ``healthy_reward`` with terminate_when_unhealthy)."""
    return env.is_healthy().to(env.dtype)


def control_cost(env: Any) -> torch.Tensor:
    """Σ a² of the action that acted."""
    return env.action.square().sum(-1)
