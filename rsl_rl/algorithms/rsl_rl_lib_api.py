"""rsl-rl-lib 5.x's algorithm interface on top of ours, for frameworks that call it (Isaac Lab, mjlab).

Our algorithms keep their hyperparameters in one dataclass (``self.cfg``) and checkpoints through
``state_dict``/``load_state_dict``; rsl-rl-lib's keep each hyperparameter as an attribute and use ``save()`` /
``load(dict, load_cfg, strict)``. :class:`RslRlLibAlgorithm` adds the latter names without a second copy of the state:
reading or setting ``alg.entropy_coef`` reads or sets ``alg.cfg.entropy_coef``, which is what ``update()`` uses.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rsl_rl.utils.utils import compile_model, reduce_gradients_in_buckets


class ConfigAlias:
    """A class attribute that forwards ``alg.<name>`` to ``alg.cfg.<name>`` (read and write)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        return self if obj is None else getattr(obj.cfg, self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(obj.cfg, self.name, value)


class RslRlLibAlgorithm:
    """Members every rsl-rl-lib algorithm has. Subclasses define ``state_dict``, ``load_state_dict`` and
    ``models()`` (the trained networks, for compile and multi-process synchronisation)."""

    config_aliases: tuple[str, ...] = ()
    """Fields of ``self.cfg`` that rsl-rl-lib keeps as attributes of the algorithm; each becomes a
    :class:`ConfigAlias`."""
    is_multi_gpu: bool = False
    """Multi-process training is refused by the runner until the scale-out issue lands (see ``WORLD_SIZE``)."""
    gpu_world_size: int = 1
    gpu_global_rank: int = 0
    grad_reduce_bucket_mb: float = 25.0
    """Size of the packed gradient buffers of :meth:`reduce_parameters`."""
    rnd: Any = None
    """rsl-rl-lib's random network distillation module (None: not configured)."""
    symmetry: Any = None
    """rsl-rl-lib's symmetry augmentation (None: not configured)."""
    intrinsic_rewards: torch.Tensor | None = None
    """The last step's intrinsic rewards when RND is configured."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls.__dict__.get("config_aliases", ()):
            alias = ConfigAlias()
            alias.__set_name__(cls, name)
            setattr(cls, name, alias)

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any], load_cfg: dict[str, bool] | None, strict: bool) -> None:
        raise NotImplementedError

    def models(self) -> list[nn.Module]:
        raise NotImplementedError

    def default_load_cfg(self, state: dict[str, Any]) -> dict[str, bool]:
        """What a load without ``load_cfg`` restores: everything."""
        return {"actor": True, "critic": True, "optimizer": True, "iteration": True}

    def save(self) -> dict[str, Any]:
        """The checkpoint dict (rsl-rl-lib's keys: ``actor_state_dict``, ``critic_state_dict``,
        ``optimizer_state_dict``, ...), which the runner completes and writes."""
        return self.state_dict()

    def load(self, loaded_dict: dict[str, Any], load_cfg: dict[str, bool] | None, strict: bool) -> bool:
        """Load what ``load_cfg`` selects (None: everything); returns whether the caller should restore the
        iteration counter too (``load_cfg["iteration"]``), as rsl-rl-lib's ``load`` does."""
        load_cfg = (
            load_cfg if load_cfg is not None else {"actor": True, "critic": True, "optimizer": True, "iteration": True}
        )
        self.load_state_dict(loaded_dict, load_cfg, strict)
        return bool(load_cfg.get("iteration", False))

    def compile(self, mode: str | None = None) -> None:
        """``torch.compile`` the networks in place (``None``: leave them; CUDA-graph modes are refused). In place, so
        state-dict keys and checkpoints stay those of the plain modules."""
        for model in self.models():
            compile_model(model, mode)  # validates the mode
            if mode is not None:
                model.compile(mode=mode)

    def broadcast_parameters(self) -> None:
        """Copy rank 0's parameters and buffers to every process of the ``torch.distributed`` group (no group: nothing
        to synchronise)."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return
        for model in self.models():
            for tensor in model.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)

    def reduce_parameters(self) -> None:
        """Average the gradients over the ``torch.distributed`` group (no group: nothing to average)."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return
        params = [p for model in self.models() for p in model.parameters()]
        reduce_gradients_in_buckets(params, torch.distributed.get_world_size(), self.grad_reduce_bucket_mb)
