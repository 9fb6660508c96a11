"""CPU-side guard of the device discipline (DESIGN.md, issue 10 item 3): no registered task builds a tensor from Python
data, or reads a tensor back to the host, while it steps and resets.

On CUDA each of these waits for the GPU. The CUDA sync-debug tests (tests/tasks/test_mujoco_cuda.py) cannot run on a
CPU-only machine, so here the calls themselves are patched to raise when task or controller code makes them. The cpu
simulator backends are exempt: their worlds live on the host by design, and they learn which worlds to reset from
the mask there (a GPU run uses the warp backend, which the CUDA tests check).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from rsl_rl.registry import get_task, task_names
from tasks.mujoco.sim import SimConfig

ROOT = Path(__file__).resolve().parents[2]
GUARDED = (ROOT / "tasks", ROOT / "controllers")
# Host-side simulator backends: their state is host memory; reading masks there is what they are for.
HOST_BACKENDS = {p.resolve() for p in (ROOT / "tasks" / "mujoco").glob("cpu*.py")} | {
    (ROOT / "tasks" / "mujoco" / "render.py").resolve()
}


class HostSync(AssertionError):
    """Task code built a tensor from Python data or read one back to the host."""


def _from_task_code(depth: int = 2) -> str | None:
    """File:line of the caller ``depth`` frames up; None when it is exempt (tests, libraries, host backends)."""
    path = Path(sys._getframe(depth).f_code.co_filename).resolve()
    if path in HOST_BACKENDS or not any(path.is_relative_to(root) for root in GUARDED):
        return None
    return f"{path.relative_to(ROOT)}:{sys._getframe(depth).f_lineno}"


def _raising(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        where = _from_task_code()
        if where is not None:
            raise HostSync(f"{name} in a step/reset path at {where}: build it once at construction, keep it on device")
        return original(*args, **kwargs)

    return guarded


def _mask_indexing(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """Boolean-mask indexing (``x[mask]``, ``x[mask] = v``) asks the host how many elements the mask selects."""

    def guarded(self: torch.Tensor, index: Any, *rest: Any) -> Any:
        parts = index if isinstance(index, tuple) else (index,)
        if any(isinstance(p, torch.Tensor) and p.dtype == torch.bool and p.dim() > 0 for p in parts):
            where = _from_task_code()
            if where is not None:
                raise HostSync(f"boolean-mask {name} at {where}: use torch.where")
        return original(self, index, *rest)

    return guarded


@contextlib.contextmanager
def no_host_sync() -> Iterator[None]:
    """Patch the tensor factories that take Python data, and the host read-backs, to raise from guarded code."""
    patches: list[tuple[Any, str, Any]] = [
        (torch, "tensor", None),
        (torch, "as_tensor", None),
        (torch, "nonzero", None),
        (torch.Tensor, "new_tensor", None),
        (torch.Tensor, "tolist", None),
        (torch.Tensor, "item", None),
        (torch.Tensor, "cpu", None),
        (torch.Tensor, "numpy", None),
        (torch.Tensor, "nonzero", None),
        (torch.Tensor, "__bool__", None),
        (torch.Tensor, "__float__", None),
        (torch.Tensor, "__int__", None),
    ]
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in patches]
    try:
        for owner, attr, original in saved:
            setattr(owner, attr, _raising(f"{getattr(owner, '__name__', owner)}.{attr}", original))
        for attr in ("__getitem__", "__setitem__"):
            original = getattr(torch.Tensor, attr)
            saved.append((torch.Tensor, attr, original))
            setattr(torch.Tensor, attr, _mask_indexing(attr, original))
        yield
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)


def test_the_guard_catches_task_style_code_and_spares_tests() -> None:
    """The guard itself: a call from a guarded file raises, the same call from a test does not."""
    code = compile("def build():\n    return torch.tensor([0.0, 1.0])\n", str(ROOT / "tasks" / "fake.py"), "exec")
    scope: dict[str, Any] = {"torch": torch}
    exec(code, scope)
    with no_host_sync():
        assert torch.tensor([1.0]).tolist() == [1.0]  # from a test: allowed
        with pytest.raises(HostSync, match=r"tensor in a step/reset path at tasks/fake.py:2"):
            scope["build"]()
    assert scope["build"]().tolist() == [0.0, 1.0]  # patches undone


def _small_cfg(name: str) -> Any:
    cfg = get_task(name).env_cfg()
    fields = {f.name for f in dataclasses.fields(cfg)}
    cfg.num_envs = 4
    cfg.max_episode_steps = 3  # time-outs: every env resets through the masked reset path during the guarded steps
    if "sim" in fields:
        cfg.sim = SimConfig(backend="cpu", nthread=1)
    if "events" in fields:  # interval events (pushes) come due during the guarded steps
        cfg.events = {
            k: dataclasses.replace(e, interval_s=(0.02, 0.05)) if e.mode == "interval" else e
            for k, e in cfg.events.items()
        }
    return cfg


@pytest.mark.parametrize("name", task_names())
def test_steps_and_resets_make_no_host_sync(name: str) -> None:
    assert {"pendulum", "cartpole-balance", "go1-flat", "go1-rough"} <= set(task_names())
    env = get_task(name).build(_small_cfg(name), seed=0)
    g = torch.Generator().manual_seed(0)
    actions = [torch.randn(4, env.num_actions, generator=g) for _ in range(8)]
    finished = torch.zeros(4, dtype=torch.bool)
    with no_host_sync():
        env.reset()
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            finished |= terminated | truncated
    assert finished.all(), "every env went through a reset during the guarded steps"
