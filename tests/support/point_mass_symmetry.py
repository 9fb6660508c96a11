"""Test support: the x ↦ −x mirror of :class:`point_mass.PointMassVecEnv`, a true symmetry of its dynamics, reward and
terminations (the mass and the episode clock do not change). Importable by name: ``"point_mass_symmetry:mirror_x"``."""

from __future__ import annotations

from typing import Any

import torch

MIRRORED_COLUMNS = {"policy": [0, 2], "critic": [0, 2]}
"""x position and x velocity of each observation group (``critic`` starts with the ``policy`` columns)."""


def mirror_x(env: Any = None, obs: Any = None, actions: torch.Tensor | None = None) -> tuple[Any, torch.Tensor | None]:
    """rsl-rl-lib's data augmentation signature: [originals; mirrored], ``[2·B, ...]`` (None for a None input)."""
    obs_aug = None
    if obs is not None:
        mirrored = obs.clone()
        for key, columns in MIRRORED_COLUMNS.items():
            if key in mirrored:
                mirrored[key][:, columns] = -mirrored[key][:, columns]
        obs_aug = torch.cat([obs, mirrored])
    actions_aug = None
    if actions is not None:
        actions_aug = torch.cat([actions, actions * torch.tensor([-1.0, 1.0], device=actions.device)])
    return obs_aug, actions_aug
