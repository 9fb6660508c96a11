"""DomainRandomization on the real hopper: draws stay in bounds, follow their law, change exactly at each env's resets,
and resume exactly."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from tasks.wrappers import DomainRandomization

TORSO, FLOOR = "body_mass:torso", "geom_friction:floor:0"
BOUNDS = {TORSO: (0.1, 3.0), FLOOR: (0.1, 3.0)}  # RRLS's Hopper 2-D set


def test_every_value_drawn_lies_in_its_bounds(hopper: Callable[..., Any]) -> None:
    env = DomainRandomization(hopper(max_steps=3), BOUNDS, log_uniform=[FLOOR], seed=1)
    g = torch.Generator().manual_seed(0)
    seen = {name: [] for name in BOUNDS}
    for i in range(24):
        if i % 8 == 0:
            env.reset()
        else:
            env.step(0.3 * torch.randn(8, 3, generator=g))
        for name, values in env.get_params().items():
            seen[name].append(values)
    for name, (lo, hi) in BOUNDS.items():
        values = torch.cat(seen[name])
        assert (values >= lo * (1 - 1e-12)).all() and (values <= hi * (1 + 1e-12)).all()
        assert values.unique().numel() > 30, "fresh draws at every reset"


def test_log_uniform_draws_are_uniform_in_log_space(hopper: Callable[..., Any]) -> None:
    env = DomainRandomization(hopper(), {TORSO: (0.01, 100.0), FLOOR: (0.01, 100.0)}, log_uniform=[TORSO])
    draws = [env.sample() for _ in range(500)]  # 4000 values per parameter
    logs = (torch.cat([d[TORSO] for d in draws]).log() - math.log(0.01)) / (math.log(100.0) - math.log(0.01))
    counts = torch.histc(logs.float(), bins=10, min=0.0, max=1.0)
    assert ((counts - 400).abs() < 100).all(), counts  # ±5 binomial σ (σ ≈ 19)
    assert abs(float(logs.mean()) - 0.5) < 0.03
    # The uniform parameter, seen in log space, is not: almost every draw lies in the top decade.
    uniform = torch.cat([d[FLOOR] for d in draws])
    assert float((uniform > 10.0).float().mean()) > 0.85


def test_values_change_at_each_reset_of_an_env_and_only_then(hopper: Callable[..., Any]) -> None:
    env = DomainRandomization(hopper(max_steps=5), BOUNDS, seed=3)
    env.reset()
    g = torch.Generator().manual_seed(0)
    before = env.get_params()
    resets = torch.zeros(8, dtype=torch.long)
    for _ in range(16):
        _, _, terminated, truncated, extras = env.step(0.3 * torch.randn(8, 3, generator=g))
        done = terminated | truncated
        after = env.get_params()
        for name in BOUNDS:
            changed = after[name] != before[name]
            assert torch.equal(changed, done), f"{name}: changed {changed.tolist()} vs reset {done.tolist()}"
        assert "randomization/body_mass:torso" in extras["log"]
        resets += done.long()
        before = after
    assert (resets >= 3).all(), "each env went through its 2nd and 3rd reset"


def test_state_dict_resumes_the_draws_exactly(hopper: Callable[..., Any]) -> None:
    env = DomainRandomization(hopper(max_steps=4), BOUNDS, log_uniform=True, seed=5)
    actions = 0.3 * torch.randn(20, 8, 3, generator=torch.Generator().manual_seed(2))
    for a in actions[:6]:
        env.step(a)
    state = copy.deepcopy(env.state_dict())
    assert set(state) == {"env", "wrapper"}

    def run(e: DomainRandomization) -> list[torch.Tensor]:
        out = []
        for a in actions[6:]:
            obs, reward, *_ = e.step(a)
            out += [obs["policy"], reward, *e.get_params().values()]
        return out

    expected = run(env)
    other = DomainRandomization(hopper(max_steps=4, seed=9), BOUNDS, log_uniform=True, seed=99)
    other.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(run(other), expected, strict=True))


def test_sample_fn_replaces_the_draw(hopper: Callable[..., Any]) -> None:
    def corners(n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        pick = torch.rand(n, generator=g) < 0.5
        return {TORSO: torch.where(pick, 0.25, 3.0).double(), FLOOR: torch.full((n,), 0.5, dtype=torch.float64)}

    env = DomainRandomization(hopper(), BOUNDS, sample_fn=corners)
    env.reset()
    params = env.get_params()
    assert ((params[TORSO] == 0.25) | (params[TORSO] == 3.0)).all() and (params[FLOOR] == 0.5).all()
    with pytest.raises(KeyError, match="sample_fn"):
        DomainRandomization(hopper(), BOUNDS, sample_fn=lambda n, g: {TORSO: torch.ones(n)})


def test_bounds_are_validated_with_the_parameters_name(hopper: Callable[..., Any]) -> None:
    task = hopper()
    with pytest.raises(ValueError, match=r"body_mass:torso.*lo <= hi"):
        DomainRandomization(task, {TORSO: (3.0, 0.1)})
    with pytest.raises(ValueError, match=r"geom_friction:floor:0.*lo > 0"):
        DomainRandomization(task, {FLOOR: (0.0, 1.0)}, log_uniform=True)
    with pytest.raises(KeyError, match="without bounds"):
        DomainRandomization(task, {TORSO: (0.1, 1.0)}, log_uniform=["torsomass"])


def test_a_nominal_fraction_keeps_the_nominal_parameters_of_that_share_of_draws(hopper: Callable[..., Any]) -> None:
    """Hopper's nominal torso mass (3.67 kg) lies outside RRLS's set [0.1, 3]: with ``nominal_fraction`` q a share q
    of the draws is the nominal model (both parameters together), the rest stays in the set; at every later reset the
    choice is made again (second and third draws too)."""
    task = hopper()
    nominal = {name: float(value[0]) for name, value in DomainRandomization(task, BOUNDS).nominal.items()}
    assert nominal[TORSO] == pytest.approx(3.67, abs=0.01) and nominal[FLOOR] == pytest.approx(1.0)
    env = DomainRandomization(hopper(), BOUNDS, nominal_fraction=0.25, seed=2)
    shares = []
    for _ in range(3):
        draws = [env.sample() for _ in range(250)]  # 2000 values per draw round
        torso = torch.cat([d[TORSO] for d in draws])
        floor = torch.cat([d[FLOOR] for d in draws])
        at_nominal = torso == nominal[TORSO]
        assert torch.equal(at_nominal, floor == nominal[FLOOR]), "a draw keeps all parameters nominal or none"
        assert ((torso[~at_nominal] >= 0.1) & (torso[~at_nominal] <= 3.0)).all()
        shares.append(float(at_nominal.float().mean()))
    assert all(abs(share - 0.25) < 0.05 for share in shares), shares  # ±5 binomial σ (σ ≈ 0.0097)
    env.reset()  # the draws reach the model
    torso = env.get_params()[TORSO]
    assert ((torso == nominal[TORSO]) | ((torso >= 0.1) & (torso <= 3.0))).all()
    none = DomainRandomization(hopper(), BOUNDS, seed=2)
    assert not any(bool((none.sample()[TORSO] == nominal[TORSO]).any()) for _ in range(50))
    everything = DomainRandomization(hopper(), BOUNDS, nominal_fraction=1.0)
    everything.reset()
    assert (everything.get_params()[TORSO] == nominal[TORSO]).all()
    with pytest.raises(ValueError, match=r"nominal_fraction must lie in \[0, 1\], got 1.5"):
        DomainRandomization(hopper(), BOUNDS, nominal_fraction=1.5)
