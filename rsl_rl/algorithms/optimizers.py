"""Optimisers of the algorithms: construction, a step that skips non-finite gradients without a host sync, and
loading a saved state, from our checkpoints and from rsl-rl-lib's.

Loading:
``torch.optim.Optimizer.load_state_dict`` matches saved state to parameters by position and copies every saved
group option over ours. Both bite on resume (what Isaac Lab's ``runner.load(path)`` does):

* Position: a saved state written for another parameter order lands on the wrong tensors. Our models register their
  parameters in rsl-rl-lib's order (distribution, MLP, RNN) since checkpoint format 2; format-1 checkpoints of this
  library (MLP/RNN before distribution) are reordered here, and any remaining shape mismatch is an error that names
  the parameter instead of a crash inside the optimiser step.
* Options: rsl-rl-lib saves ``fused=None`` and a float ``lr``. Copied over ours, they would turn off the fused step
  (whose ``found_inf`` flag our skip-non-finite-steps logic sets: torch then asserts) and replace the device tensor
  learning rate. The construction-time implementation options are kept; the saved hyperparameters are loaded.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import clip_grads_with_norm_, get_total_norm

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
IMPLEMENTATION_OPTIONS = ("fused", "foreach", "capturable", "differentiable")
"""Group options that choose how the step is computed, not what it computes: ours stay."""
_FORMAT_1_RANK = {"rnn": 0, "mlp": 1, "distribution": 2}
"""Registration order of a model's submodules in checkpoint format 1."""


def is_format_1(state: dict[str, Any]) -> bool:
    """A checkpoint of this library written before format 2 (rsl-rl-lib's have no ``format`` key)."""
    return state.get("format") == "rsl_rl_forge.checkpoint" and int(state.get("format_version", 1)) < 2


def format_1_order(model: nn.Module) -> list[int]:
    """Positions (in today's ``model.parameters()`` order) of the parameters as a format-1 checkpoint listed them."""
    names = [name for name, _ in model.named_parameters()]
    return sorted(range(len(names)), key=lambda i: (_FORMAT_1_RANK.get(names[i].split(".", 1)[0], 3), i))


def load_optimizer_state(
    optimizer: torch.optim.Optimizer,
    saved: dict[str, Any],
    lr: torch.Tensor | None = None,
    saved_order: Sequence[int] | None = None,
) -> None:
    """Load ``saved`` (an optimiser ``state_dict``) into ``optimizer``, keeping its implementation options.

    ``saved_order[k]``: the position, among ``optimizer``'s parameters (groups concatenated), of the k-th parameter
    of the saved state (None: the same order). ``lr``: a device tensor the groups' learning rate must stay (filled
    with the saved value of the first group).
    """
    saved = copy.copy(saved)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if saved_order is not None:
        saved = _reorder(saved, list(saved_order))
    saved_groups = saved["param_groups"]
    if len(saved_groups) != len(optimizer.param_groups) or any(
        len(s["params"]) != len(o["params"]) for s, o in zip(saved_groups, optimizer.param_groups, strict=False)
    ):
        raise ValueError(
            f"the saved optimiser state has groups of {[len(g['params']) for g in saved_groups]} parameters, this "
            f"model's optimiser {[len(g['params']) for g in optimizer.param_groups]}: the checkpoint was written for "
            "another model (load it with load_cfg={'optimizer': False} to keep only the weights)"
        )
    saved_ids = [i for group in saved_groups for i in group["params"]]
    for position, (saved_id, param) in enumerate(zip(saved_ids, params, strict=True)):
        for key, value in (saved["state"].get(saved_id) or {}).items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                raise ValueError(
                    f"the saved optimiser state '{key}' of parameter {position} has shape {tuple(value.shape)}, the "
                    f"parameter {tuple(param.shape)}: the checkpoint lists its parameters in another order or for "
                    "another model (load it with load_cfg={'optimizer': False} to keep only the weights)"
                )
    ours = [{k: group[k] for k in IMPLEMENTATION_OPTIONS if k in group} for group in optimizer.param_groups]
    saved["param_groups"] = [{**s, **o} for s, o in zip(saved_groups, ours, strict=True)]
    saved_lr = float(saved_groups[0]["lr"])
    optimizer.load_state_dict(saved)
    if lr is not None:
        lr.fill_(saved_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr


def _reorder(saved: dict[str, Any], order: list[int]) -> dict[str, Any]:
    """``saved`` with the k-th saved parameter moved to position ``order[k]`` (a single flat numbering)."""
    saved_ids = [i for group in saved["param_groups"] for i in group["params"]]
    if sorted(order) != list(range(len(saved_ids))):
        raise ValueError(f"cannot reorder an optimiser state of {len(saved_ids)} parameters by {order}")
    new_id = {saved_id: order[k] for k, saved_id in enumerate(saved_ids)}
    state = {new_id[i]: value for i, value in saved["state"].items()}
    groups, start = [], 0
    for group in saved["param_groups"]:
        count = len(group["params"])
        groups.append({**group, "params": list(range(start, start + count))})
        start += count
    return {"state": state, "param_groups": groups}


def step_if_finite(
    optimizer: torch.optim.Optimizer,
    groups: Sequence[Sequence[torch.Tensor]],
    max_grad_norm: float | None,
    device: torch.device,
) -> torch.Tensor:
    """Clip each group's gradients to ``max_grad_norm`` (None: no clipping), then step unless a gradient is non-finite.

    Returns 1.0 if the step was discarded, else 0.0 (a device scalar). No host sync: the fused optimisers skip the
    update themselves when their ``found_inf`` flag is set (the mechanism AMP's GradScaler uses); others get zeroed
    gradients. PPO clips actor and critic separately (rsl_rl); distillation clips the student as one group.
    """
    finite = torch.ones((), dtype=torch.bool, device=device)
    all_grads: list[torch.Tensor] = []
    for params in groups:
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            continue
        norm = get_total_norm(grads)
        finite = finite & torch.isfinite(norm)
        if max_grad_norm is not None:
            clip_grads_with_norm_(params, max_grad_norm, norm)
        all_grads += grads
    found_inf = (~finite).float()
    if optimizer.defaults.get("fused"):
        setattr(optimizer, "found_inf", found_inf)  # noqa: B010 -- read by the fused step, as under AMP
    else:
        for g in all_grads:
            g.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0).mul_(finite)
    optimizer.step()
    return found_inf


def make_optimizer(name: str, params: list[torch.nn.Parameter], lr: torch.Tensor) -> torch.optim.Optimizer:
    """Fused Adam/AdamW/SGD take a tensor learning rate and are ~6x faster than the per-tensor loop on CPU."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, fused=True)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, fused=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, fused=True)
    return torch.optim.RMSprop(params, lr=lr, foreach=False)
