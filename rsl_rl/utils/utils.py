"""Helpers under rsl-rl-lib 5.x's names (``rsl_rl.utils``), so code written against it imports and runs here.

The runner uses :func:`resolve_obs_groups` and :func:`resolve_callable`; the rest exists for frameworks and user code
that call them (trajectory padding for recurrent mini-batches, activation and optimiser lookup, NaN checks, compile).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from typing import Any

import torch
from tensordict import TensorDict

OPTIMIZER_CLASSES: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
CUDA_GRAPH_COMPILE_MODES = ("reduce-overhead", "max-autotune")


def resolve_callable(callable_or_name: type | Callable[..., Any] | str) -> Callable[..., Any]:
    """A callable given as itself, as ``"module.path:Attr.Nested"``, as a dotted ``"module.path.Attr"``, or as a bare
    name found in one of ``rsl_rl``'s modules (``"PPO"``, ``"MLPModel"``)."""
    if callable(callable_or_name):
        return callable_or_name
    if not isinstance(callable_or_name, str):
        raise TypeError(f"expected a callable or a string naming one, got {type(callable_or_name).__name__}")
    name = callable_or_name
    if ":" in name:
        module_path, attr_path = name.rsplit(":", 1)
        return _get_path(importlib.import_module(module_path), attr_path.split("."), name)
    if "." in name:
        parts = name.split(".")
        for split in range(len(parts) - 1, 0, -1):  # the longest importable module prefix first
            try:
                module = importlib.import_module(".".join(parts[:split]))
            except ModuleNotFoundError:
                continue
            try:
                return _get_path(module, parts[split:], name)
            except AttributeError:
                continue
        raise ImportError(f"cannot resolve {name!r}: no importable module holds the attribute it names")
    import rsl_rl

    for info in pkgutil.walk_packages(rsl_rl.__path__, "rsl_rl."):
        if info.name.startswith("rsl_rl.cli"):  # the CLI imports tasks: not a place to look for components
            continue
        module = importlib.import_module(info.name)
        if hasattr(module, name):
            return getattr(module, name)
    raise ValueError(f"cannot resolve {name!r}: no rsl_rl module defines it; use 'module.path:Name' or pass the class")


def _get_path(obj: Any, attrs: list[str], name: str) -> Any:
    for attr in attrs:
        if not hasattr(obj, attr):
            raise AttributeError(f"cannot resolve {name!r}: {obj!r} has no attribute {attr!r}")
        obj = getattr(obj, attr)
    return obj


def resolve_class(cfg: dict[str, Any]) -> tuple[Callable[..., Any], dict[str, Any]]:
    """``cfg["class_name"]`` resolved, and a copy of ``cfg`` without it (the constructor's keyword arguments)."""
    rest = dict(cfg)
    if "class_name" not in rest:
        raise KeyError(f"config section has no 'class_name' key: {sorted(rest)}")
    return resolve_callable(rest.pop("class_name")), rest


def resolve_nn_activation(act_name: str) -> torch.nn.Module:
    """An activation module by name (the names of :data:`rsl_rl.modules.mlp.ACTIVATIONS`)."""
    from rsl_rl.modules.mlp import ACTIVATIONS  # lazy: the modules' configs import rsl_rl.utils

    key = act_name.lower()
    if key not in ACTIVATIONS:
        raise ValueError(f"activation {act_name!r} is not known; allowed: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[key]()


def resolve_optimizer(optimizer_name: str) -> type[torch.optim.Optimizer]:
    """The optimiser class named ``adam``, ``adamw``, ``sgd`` or ``rmsprop``."""
    key = optimizer_name.lower()
    if key not in OPTIMIZER_CLASSES:
        raise ValueError(f"optimizer {optimizer_name!r} is not known; allowed: {list(OPTIMIZER_CLASSES)}")
    return OPTIMIZER_CLASSES[key]


def resolve_obs_groups(
    obs: TensorDict,
    obs_groups: dict[str, list[str]],
    default_sets: Iterable[str],
    image_sets: Iterable[str] = (),
) -> dict[str, list[str]]:
    """Check ``obs_groups`` against the env's groups and fill the missing sets of ``default_sets`` (rsl_rl's rule).

    A missing set uses the group of the same name if the env has one, else ``"policy"``. Every group a default set
    uses must be a 2-D ``[num_envs, dim]`` tensor, except that the sets in ``image_sets`` (read by CNN models) may
    also use image groups ``[num_envs, C, H, W]``. Returns a new dict; ``obs_groups`` is not modified.
    """
    available = list(obs.keys())
    resolved = {name: list(groups) for name, groups in obs_groups.items()}
    for name, groups in resolved.items():
        if not groups:
            raise ValueError(f"obs_groups['{name}'] is empty; list at least one of the env's groups: {available}")
        for group in groups:
            if group not in available:
                raise ValueError(
                    f"obs_groups['{name}'] names group '{group}', which the env does not provide; "
                    f"available groups: {available}"
                )
    sets = list(default_sets)
    for name in sets:
        if name in resolved:
            continue
        if name in available:
            resolved[name] = [name]
        elif "policy" in available:
            resolved[name] = ["policy"]
        else:
            raise ValueError(
                f"obs_groups has no '{name}' set and the env has neither a '{name}' nor a 'policy' group; "
                f"available groups: {available}"
            )
    images = set(image_sets)
    for name in sets:
        for group in resolved[name]:
            if obs[group].dim() != 2 and not (name in images and obs[group].dim() == 4):
                allowed = "[num_envs, dim] or [num_envs, C, H, W]" if name in images else "[num_envs, dim]"
                raise ValueError(
                    f"observation group '{group}' (obs_groups['{name}']) has shape {tuple(obs[group].shape)}; "
                    f"the model reads {allowed}" + ("" if name in images else " (a CNNModel reads image groups)")
                )
    return resolved


def check_nan(obs: TensorDict, rewards: torch.Tensor, dones: torch.Tensor) -> None:
    """Raise ``ValueError`` naming the output that holds NaN. Syncs the host: the runner's own check is the fused
    once-per-iteration one; this is for code that calls rsl-rl-lib's per-step check."""
    for key, value in obs.items():
        if isinstance(value, torch.Tensor) and torch.isnan(value).any():
            raise ValueError(f"observation group {key!r} from the environment contains NaN")
    if torch.isnan(rewards).any():
        raise ValueError("the rewards from the environment contain NaN")
    if dones.is_floating_point() and torch.isnan(dones).any():
        raise ValueError("the dones from the environment contain NaN")


def compile_model(model: torch.nn.Module, mode: str | None = None) -> torch.nn.Module:
    """``torch.compile(model, mode=mode)``; ``None`` returns the model as it is. CUDA-graph modes are refused: replaying
    a graph overwrites the previous call's outputs, which the algorithms still hold."""
    if mode is None:
        return model
    if mode in CUDA_GRAPH_COMPILE_MODES:
        raise ValueError(f"compile mode {mode!r} uses CUDA graphs; allowed: 'default', 'max-autotune-no-cudagraphs'")
    return torch.compile(model, mode=mode)  # pyright: ignore[reportReturnType]


def get_param(param: Any, idx: int) -> Any:
    """``param[idx]`` for a list or tuple (one value per model), else ``param`` (one value for all)."""
    return param[idx] if isinstance(param, list | tuple) else param


def reduce_gradients_in_buckets(params: Iterable[torch.nn.Parameter], world_size: int, bucket_mb: float) -> None:
    """Average gradients over a ``torch.distributed`` group: packed into buffers of at most ``bucket_mb`` MB, one
    ``all_reduce`` per buffer (a gradient larger than a buffer is reduced in slices)."""
    limit = max(1, int(bucket_mb * 1024 * 1024))
    grads = [p.grad.view(-1) for p in params if p.grad is not None]
    bucket: list[torch.Tensor] = []
    size = 0

    def flush() -> None:
        nonlocal bucket, size
        if bucket:
            packed = torch.cat(bucket)
            torch.distributed.all_reduce(packed)
            packed /= world_size
            offset = 0
            for grad in bucket:
                grad.copy_(packed[offset : offset + grad.numel()])
                offset += grad.numel()
        bucket, size = [], 0

    for grad in grads:
        nbytes = grad.numel() * grad.element_size()
        if nbytes > limit:
            flush()
            step = max(1, limit // grad.element_size())
            for start in range(0, grad.numel(), step):
                chunk = grad[start : start + step]
                torch.distributed.all_reduce(chunk)
                chunk /= world_size
            continue
        if size + nbytes > limit:
            flush()
        bucket.append(grad)
        size += nbytes
    flush()


def split_and_pad_trajectories(
    tensor: torch.Tensor | TensorDict, dones: torch.Tensor
) -> tuple[torch.Tensor | TensorDict, torch.Tensor]:
    """Cut ``tensor[T, N, ...]`` into the episodes ``dones[T, N]`` delimit (an episode ends after a done step; the
    rollout's end ends every episode), zero-pad them to ``T`` steps and stack them: ``[T, E, ...]`` and a validity mask
    ``[T, E]``, episodes ordered env by env. Syncs the host (the episode lengths decide the split)."""
    ends = dones.to(torch.bool).clone()
    ends[-1] = True
    flat_ends = ends.transpose(0, 1).reshape(-1)  # env-major
    end_index = torch.nonzero(flat_ends).squeeze(-1)
    lengths = torch.diff(end_index, prepend=end_index.new_tensor([-1]))
    length_list = lengths.tolist()
    steps = dones.shape[0]
    mask = torch.arange(steps, device=dones.device).unsqueeze(1) < lengths.unsqueeze(0)

    def pad(value: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(value.transpose(0, 1).flatten(0, 1), length_list)
        out = value.new_zeros((steps, len(pieces), *value.shape[2:]))
        out.transpose(0, 1)[mask.transpose(0, 1)] = torch.cat(pieces)
        return out

    if isinstance(tensor, TensorDict):
        padded = TensorDict(
            {key: pad(value) for key, value in tensor.items() if isinstance(value, torch.Tensor)},
            batch_size=[steps, len(length_list)],
            device=tensor.device,
        )
        return padded, mask
    return pad(tensor), mask


def unpad_trajectories(trajectories: torch.Tensor | TensorDict, masks: torch.Tensor) -> torch.Tensor | TensorDict:
    """Inverse of :func:`split_and_pad_trajectories`: the valid steps back as ``[T, N, ...]``."""
    valid = trajectories.transpose(1, 0)[masks.transpose(1, 0)]
    steps = trajectories.shape[0]
    if isinstance(trajectories, TensorDict):
        return valid.view(-1, steps).transpose(1, 0)
    return valid.view(-1, steps, *trajectories.shape[2:]).transpose(1, 0)
