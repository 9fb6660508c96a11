"""The image encoder of SAC's actor: CNN features of the image groups of one flat observation row (issue 14).

SAC stores every observation set flat in its replay (an image group ``[C, H, W]`` flattened row-major, in
``obs_groups`` order -- the layout of :class:`rsl_rl.models.cnn_model.CNNModel`, which PPO's rollout storage, the
exports and the torch-free runtime already use). The actor therefore receives one tensor ``[..., obs_dim]``;
:class:`FlatImageEncoder` splits it by fixed column ranges into the vector part (which the actor normalises) and the
images, runs one :class:`~rsl_rl.modules.cnn.CNN` per image group, and joins ``[vector, features…]`` -- CNNModel's
order -- as the MLP's input. Only the actor reads images: SAC's critics are ensembles of MLPs over vector groups
(asymmetric actor-critic, as on pixel-pendulum where the critic reads the state).

Written for TorchScript and ONNX export as well as training (index loops, no optional submodules), so the exported
policy (:class:`rsl_rl.export.ExportedSACPolicy`) holds a copy of this module unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rsl_rl.modules.cnn import CNN, is_per_group


class FlatImageEncoder(nn.Module):
    """``obs[..., obs_dim]`` → vector part ``[..., vector_dim]`` and images; ``(vector, images)`` → ``[vector,
    CNN features of each image]`` ``[..., output_dim]``."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], cnn_cfg: dict[str, Any]) -> None:
        """``shapes``: each observation group's shape per sample, in the flat layout's order (``[D]`` or
        ``[C, H, W]``); ``cnn_cfg``: :class:`CNN` arguments for every image group, or ``{group: kwargs}``."""
        super().__init__()
        vector: list[tuple[int, int]] = []
        self.image_groups: list[str] = []
        self.image_spans: list[tuple[int, int]] = []
        self.image_shapes: list[list[int]] = []
        start = 0
        for group, shape in shapes.items():
            width = int(torch.Size(shape).numel())
            if len(shape) == 3:
                self.image_groups.append(group)
                self.image_spans.append((start, start + width))
                self.image_shapes.append([int(d) for d in shape])
            elif len(shape) == 1:
                if vector and vector[-1][1] == start:  # adjacent vector groups: one slice
                    vector[-1] = (vector[-1][0], start + width)
                else:
                    vector.append((start, start + width))
            else:
                raise ValueError(
                    f"observation group {group!r} has shape {list(shape)} per sample; need [D] or [C, H, W]"
                )
            start += width
        if not self.image_groups:
            raise ValueError(f"actor.cnn_cfg is set but the actor's groups {list(shapes)} hold no image [C, H, W]")
        per_group = cnn_cfg if is_per_group(cnn_cfg) else dict.fromkeys(self.image_groups, cnn_cfg)
        if set(per_group) != set(self.image_groups):
            raise ValueError(
                f"actor.cnn_cfg has configs for {sorted(per_group)}; the image groups are {self.image_groups}"
            )
        self.input_dim = start
        """Width of the flat input."""
        self.vector_spans = vector
        """Columns of the vector groups (adjacent groups merged)."""
        # Never empty (TorchScript types attributes by their values); unused without vector groups.
        self._vector_slices: list[tuple[int, int]] = list(vector) or [(0, 0)]
        self.vector_dim = sum(b - a for a, b in vector)
        self.has_vector = self.vector_dim > 0
        self.cnns = nn.ModuleList(
            CNN((s[1], s[2]), s[0], **per_group[g]) for g, s in zip(self.image_groups, self.image_shapes, strict=True)
        )
        self.feature_dim = 0
        for group, cnn in zip(self.image_groups, self.cnns, strict=True):
            if not isinstance(cnn.output_dim, int):
                raise ValueError(f"actor.cnn_cfg for {group!r} must flatten its output (flatten=True)")
            self.feature_dim += cnn.output_dim
        self.output_dim = self.vector_dim + self.feature_dim
        """Width of the MLP's input."""

    def split(self, obs: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The vector part ``[..., vector_dim]`` (``[..., 0]`` without vector groups) and each image ``[..., C, H, W]``
        of a flat ``obs[..., obs_dim]``."""
        lead = list(obs.shape[:-1])
        if self.has_vector:
            vector = torch.cat([obs[..., span[0] : span[1]] for span in self._vector_slices], dim=-1)
        else:
            vector = obs[..., :0]
        images: list[torch.Tensor] = []
        for i in range(len(self.image_spans)):  # index loops: TorchScript compiles this module too
            start, end = self.image_spans[i]
            images.append(obs[..., start:end].reshape(lead + self.image_shapes[i]))
        return vector, images

    def forward(self, vector: torch.Tensor, images: list[torch.Tensor]) -> torch.Tensor:
        """``[vector, features of image 0, …]`` ``[..., output_dim]``; ``vector`` already normalised."""
        latent: list[torch.Tensor] = [vector] if self.has_vector else []
        for i, cnn in enumerate(self.cnns):
            image = images[i]
            lead = list(image.shape[:-3])
            latent.append(cnn(image.reshape([-1] + list(image.shape[-3:]))).reshape(lead + [-1]))
        return torch.cat(latent, dim=-1)
