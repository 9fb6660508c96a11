"""The convolutional encoder (rsl-rl-lib's ``CNN`` block) and the configuration of CNN models.

An encoder is ``[Conv2d → norm → activation → max-pool?] × layers → global pool? → flatten?``. Its children are
numbered in exactly that order (parameters only in the convolutions and norms), and padding and output sizes follow
rsl-rl-lib's rules, so an rsl-rl-lib CNN checkpoint loads into the same configuration here.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rsl_rl.modules.mlp import ACTIVATIONS, ActorConfig, validate_mlp
from rsl_rl.utils.class_names import short_class_name
from rsl_rl.utils.utils import get_param

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
NORMS = ("none", "batch", "layer")
GLOBAL_POOLS = ("none", "max", "avg")


def conv_padding(size: tuple[int, int], kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Symmetric padding rsl-rl-lib gives a padded layer: ⌈(s⌊n/s⌋ − n − s + d(k−1) + 1) / 2⌉ per axis (≥ 0).

    The output then has ⌈n/s⌉ cells when ``n`` is a multiple of ``s`` (a "same" convolution for ``s = 1``). Kept
    exactly, rather than a cleaner rule, because the flattened width -- and so the next Linear's shape -- depends on
    it. Negative values (which rsl-rl-lib would pass to ``Conv2d`` and fail on) are clamped to 0.
    """
    h, w = (max(0, math.ceil((stride * (n // stride) - n - stride + dilation * (kernel - 1) + 1) / 2)) for n in size)
    return h, w


def conv_output_size(
    size: tuple[int, int], kernel: int, stride: int, dilation: int, padding: tuple[int, int], max_pool: bool = False
) -> tuple[int, int]:
    """Height and width after a ``Conv2d`` (torch's formula) and, with ``max_pool``, the 3×3 stride-2 pool that halves
    them (rounding up)."""
    out = [(n + 2 * p - dilation * (kernel - 1) - 1) // stride + 1 for n, p in zip(size, padding, strict=True)]
    return (math.ceil(out[0] / 2), math.ceil(out[1] / 2)) if max_pool else (out[0], out[1])


class CNN(nn.Sequential):
    """Convolutional encoder of one image group ``[B, C, H, W]`` (rsl-rl-lib's constructor and attributes).

    Per-layer arguments (``kernel_size``, ``stride``, ``dilation``, ``norm``, ``max_pool``) take one value for every
    layer or a list with one value per layer. ``padding`` is ``"none"`` or a ``Conv2d`` padding mode (then each layer
    is padded by :func:`conv_padding`). With ``flatten`` the output is ``[B, output_dim]``, else ``[B, C', H', W']``.
    """

    def __init__(
        self,
        input_dim: tuple[int, int],
        input_channels: int,
        output_channels: tuple[int, ...] | list[int],
        kernel_size: int | tuple[int, ...] | list[int],
        stride: int | tuple[int, ...] | list[int] = 1,
        dilation: int | tuple[int, ...] | list[int] = 1,
        padding: str = "none",
        norm: str | tuple[str] | list[str] = "none",
        activation: str = "elu",
        max_pool: bool | tuple[bool] | list[bool] = False,
        global_pool: str = "none",
        flatten: bool = True,
    ) -> None:
        """``input_dim``: (height, width) of the image; ``output_channels``: one entry per convolution."""
        super().__init__()
        if padding != "none" and padding not in PADDING_MODES:
            raise ValueError(f"padding={padding!r}; allowed: ['none', *{list(PADDING_MODES)}]")
        if global_pool not in GLOBAL_POOLS:
            raise ValueError(f"global_pool={global_pool!r}; allowed: {list(GLOBAL_POOLS)}")
        if activation.lower() not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r}; allowed: {sorted(ACTIVATIONS)}")
        if not output_channels:
            raise ValueError("output_channels is empty: a CNN needs at least one convolution")
        act = ACTIVATIONS[activation.lower()]
        layers: list[nn.Module] = []
        channels, size = int(input_channels), (int(input_dim[0]), int(input_dim[1]))
        for i, out_channels in enumerate(output_channels):
            k, s, d = int(get_param(kernel_size, i)), int(get_param(stride, i)), int(get_param(dilation, i))
            pad = conv_padding(size, k, s, d) if padding != "none" else (0, 0)
            mode = padding if padding != "none" else "zeros"
            layers.append(nn.Conv2d(channels, out_channels, k, s, pad, d, padding_mode=mode))
            conv_size = conv_output_size(size, k, s, d, pad)
            if min(conv_size) < 1:
                raise ValueError(f"layer {i} of the CNN maps a {size[0]}×{size[1]} input to nothing ({conv_size})")
            layers += _norm(get_param(norm, i), out_channels, conv_size)
            layers.append(act())
            pool = bool(get_param(max_pool, i))
            if pool:
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
            channels, size = out_channels, conv_output_size(size, k, s, d, pad, pool)
        if global_pool != "none":
            layers.append(nn.AdaptiveMaxPool2d((1, 1)) if global_pool == "max" else nn.AdaptiveAvgPool2d((1, 1)))
            size = (1, 1)
        if flatten:
            layers.append(nn.Flatten(start_dim=1))
        for i, layer in enumerate(layers):
            self.add_module(str(i), layer)
        self._output_channels: int | None = None if flatten else channels
        self._output_dim: int | tuple[int, int] = channels * size[0] * size[1] if flatten else size

    @property
    def output_channels(self) -> int | None:
        """Channels of the output map; None when the output is flattened."""
        return self._output_channels

    @property
    def output_dim(self) -> tuple[int, int] | int:
        """Width of the flattened output, or (height, width) of the output map."""
        return self._output_dim

    def init_weights(self) -> None:
        """Kaiming-normal convolution weights and zero biases (what rsl-rl-lib offers; its models keep torch's
        default initialisation unless this is called)."""
        for module in self:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x)
        return x


def _norm(kind: str, channels: int, size: tuple[int, int]) -> list[nn.Module]:
    if kind == "none":
        return []
    if kind == "batch":
        return [nn.BatchNorm2d(channels)]
    if kind == "layer":
        return [nn.LayerNorm([channels, size[0], size[1]])]
    raise ValueError(f"norm={kind!r}; allowed: {list(NORMS)}")


CNN_KEYS = tuple(
    name for name in inspect.signature(CNN.__init__).parameters if name not in ("self", "input_dim", "input_channels")
)
"""The keys of one encoder's ``cnn_cfg`` (the image's size and channels come from the observation)."""


def default_cnn_cfg() -> dict[str, Any]:
    """Two stride-2 convolutions: small enough for CPU training on low-resolution images."""
    return {"output_channels": [16, 32], "kernel_size": [4, 3], "stride": 2}


def is_per_group(cnn_cfg: dict[str, Any]) -> bool:
    """rsl-rl-lib's rule: a ``cnn_cfg`` whose values are all dicts holds one encoder config per image group."""
    return bool(cnn_cfg) and all(isinstance(v, dict) for v in cnn_cfg.values())


def validate_cnn_cfg(cnn_cfg: dict[str, Any], name: str = "cnn_cfg") -> None:
    """Check a ``cnn_cfg`` (shared, or ``{group: kwargs}``) against :data:`CNN_KEYS` at config time; errors name the
    field (``name``, e.g. ``"actor.cnn_cfg"``) and the key."""
    for group, kwargs in cnn_cfg.items() if is_per_group(cnn_cfg) else [("", cnn_cfg)]:
        where = f"{name}[{group!r}]" if group else name
        unknown = sorted(set(kwargs) - set(CNN_KEYS))
        if unknown:
            raise KeyError(f"unknown key(s) {unknown} in {where}; valid keys: {list(CNN_KEYS)}")
        for required in ("output_channels", "kernel_size"):
            if required not in kwargs:
                raise KeyError(f"{where} needs '{required}'")


@dataclass
class CNNConfig(ActorConfig):
    """A CNN model (rsl-rl-lib's ``CNNModel`` section): CNN encoders for the image groups ``[N, C, H, W]``, their
    features concatenated after the (normalised) vector groups, then the MLP. ``distribution_cfg`` is unused for a
    critic."""

    class_name: str = "CNNModel"
    """Only ``"CNNModel"``."""
    cnn_cfg: dict[str, Any] = field(default_factory=default_cnn_cfg)
    """:class:`CNN` keyword arguments (keys :data:`CNN_KEYS`) shared by every image group, or ``{group: kwargs}``."""
    share_cnn_encoders: bool = False
    """Critic only: use the actor's encoders instead of its own (rsl-rl-lib's ``algorithm.share_cnn_encoders``;
    ``cnn_cfg`` is then ignored). Both models must read the same image groups."""

    def __post_init__(self) -> None:
        short_class_name(self.class_name, ["CNNModel"], "class_name")
        validate_mlp(self.hidden_dims, self.activation)
        self.hidden_dims = tuple(int(d) for d in self.hidden_dims)
        validate_cnn_cfg(self.cnn_cfg)
