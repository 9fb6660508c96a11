"""Pure-torch classic tasks: parity with gymnasium, auto-reset mechanics, state round trip."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from rsl_rl.registry import get_task, task_names
from tasks.classic.cartpole import CartPoleCfg, CartPoleEnv, swingup_cfg
from tasks.classic.pendulum import PendulumCfg, PendulumEnv
from tasks.classic.torch_task import TorchTask


def test_pendulum_matches_gymnasium_for_a_whole_episode() -> None:
    """float64 state: the same trajectory as gymnasium for 200 steps, truncation included (obs/rewards are float32)."""
    n = 4
    env = PendulumEnv(PendulumCfg(num_envs=n, dtype="float64"), seed=0)
    refs = [gym.make("Pendulum-v1") for _ in range(n)]
    for i, ref in enumerate(refs):
        ref.reset(seed=i)
        ref.unwrapped.state = env.state[i].numpy().copy()  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    for step in range(200):
        # Torques beyond ±2 exercise the clipping; both sides receive the same float32 actions.
        actions = rng.uniform(-3.0, 3.0, size=(n, 1)).astype(np.float32)
        obs, reward, terminated, truncated, extras = env.step(torch.from_numpy(actions))
        for i, ref in enumerate(refs):
            ref_obs, ref_reward, ref_term, ref_trunc, _ = ref.step(actions[i])
            final = extras["final_obs"]["policy"][i].numpy()
            assert np.abs(final - ref_obs).max() <= 1e-6, f"obs differ at step {step}"
            assert reward[i].item() == pytest.approx(ref_reward, rel=1e-6, abs=1e-6)
            assert bool(terminated[i]) == ref_term
            assert bool(truncated[i]) == ref_trunc == (step == 199)
    # After the time-out every env was reset (θ drawn again), with a fresh episode counter.
    assert (env.episode_length_buf == 0).all()
    assert not torch.allclose(obs["policy"], extras["final_obs"]["policy"])


def test_pendulum_float32_step_matches_gymnasium() -> None:
    """float32 state: every single step agrees to 1e-5 (over many steps the chaotic swing amplifies rounding)."""
    n = 64
    env = PendulumEnv(PendulumCfg(num_envs=n), seed=2)
    ref = gym.make("Pendulum-v1").unwrapped
    ref.reset(seed=0)
    rng = np.random.default_rng(1)
    for _ in range(50):
        actions = rng.uniform(-3.0, 3.0, size=(n, 1)).astype(np.float32)
        start = env.state.double().numpy().copy()
        _, reward, _, _, extras = env.step(torch.from_numpy(actions))
        for i in range(n):
            ref.state = start[i].copy()  # type: ignore[attr-defined]
            ref_obs, ref_reward, *_ = ref.step(actions[i])
            assert np.abs(extras["final_obs"]["policy"][i].numpy() - ref_obs).max() <= 1e-5
            assert reward[i].item() == pytest.approx(ref_reward, rel=1e-5, abs=1e-5)


def test_pendulum_reward_terms_sum_to_reward_and_are_logged() -> None:
    env = PendulumEnv(PendulumCfg(num_envs=8), seed=1)
    total = torch.zeros(8)
    for _ in range(200):
        _, reward, _, truncated, extras = env.step(torch.randn(8, 1))
        total += reward
    assert truncated.all()
    terms = extras["episode"]
    assert set(terms) == {"reward/angle", "reward/velocity", "reward/torque"}
    assert torch.allclose(torch.stack(list(terms.values())).sum(0), total, rtol=1e-4)


def test_cartpole_dynamics_match_gymnasium_semi_implicit_euler() -> None:
    env = CartPoleEnv(CartPoleCfg(num_envs=1, dtype="float64"), seed=0)
    ref = gym.make("CartPole-v1").unwrapped
    ref.reset(seed=0)
    ref.kinematics_integrator = "semi-implicit euler"  # type: ignore[attr-defined]
    ref.state = env.state[0].numpy().copy()  # type: ignore[attr-defined]
    rng = np.random.default_rng(1)
    for _ in range(8):  # short: the balance episode ends when the pole tilts past 12°
        push = int(rng.integers(0, 2))
        _, _, terminated, _, extras = env.step(torch.tensor([[2.0 * push - 1.0]]))  # ±1 → ±10 N, gymnasium's forces
        _, _, ref_term, _, _ = ref.step(push)
        x, x_dot, cos, sin, theta_dot = extras["final_obs"]["policy"][0].tolist()
        rx, rx_dot, rtheta, rtheta_dot = ref.state  # type: ignore[attr-defined]
        assert [x, x_dot, theta_dot] == pytest.approx([rx, rx_dot, rtheta_dot], abs=1e-6)
        assert math.atan2(sin, cos) == pytest.approx(rtheta, abs=1e-6)
        assert bool(terminated[0]) == ref_term
        if ref_term:
            break


def test_cartpole_track_limits() -> None:
    for cfg in (CartPoleCfg(), swingup_cfg()):
        env = CartPoleEnv(cfg, seed=0)
        env.state[:3, 0] = torch.tensor([2.39, -2.39, 0.0])
        env.state[:3, 1] = torch.tensor([5.0, -5.0, 0.0])
        obs, _, terminated, truncated, _ = env.step(torch.zeros(env.num_envs, 1))
        assert not truncated.any()
        if cfg.end_stops:  # swing-up: the cart halts at the stop, the episode goes on
            assert not terminated.any()
            assert obs["policy"][:2, 0].tolist() == pytest.approx([2.4, -2.4])
            assert obs["policy"][:2, 1].tolist() == [0.0, 0.0]
        else:  # balance: leaving the track ends the episode and the env is reset
            assert terminated[:2].all()
            assert env.episode_length_buf[:2].tolist() == [0, 0]


def test_cartpole_swingup_starts_hanging_down() -> None:
    cos = CartPoleEnv(swingup_cfg(), seed=0).get_observations()["policy"][:, 2]
    assert (cos < -0.99).all()


@pytest.mark.parametrize("name", ["pendulum", "cartpole-balance", "cartpole-swingup"])
def test_registered_tasks_build_and_step(name: str) -> None:
    assert name in task_names()
    spec = get_task(name)
    cfg = spec.env_cfg()
    cfg.num_envs = 4096  # thousands of envs, one batch of torch ops
    env = spec.build(cfg, seed=0)
    obs = env.get_observations()
    assert obs["policy"].shape[0] == 4096
    obs, reward, terminated, truncated, _ = env.step(torch.zeros(4096, env.num_actions))
    assert reward.shape == terminated.shape == truncated.shape == (4096,)
    assert torch.isfinite(obs["policy"]).all()


def test_state_dict_round_trip_reproduces_the_future() -> None:
    env = PendulumEnv(PendulumCfg(num_envs=6), seed=3)
    for _ in range(150):
        env.step(torch.randn(6, 1))
    state = env.state_dict()
    actions = [torch.randn(6, 1) for _ in range(100)]
    first = [env.step(a)[0]["policy"] for a in actions]
    other = PendulumEnv(PendulumCfg(num_envs=6), seed=99)
    other.load_state_dict(state)
    second = [other.step(a)[0]["policy"] for a in actions]
    assert all(torch.equal(x, y) for x, y in zip(first, second, strict=True))  # includes the resets at step 200
    with pytest.raises(ValueError, match="shape"):
        PendulumEnv(PendulumCfg(num_envs=2)).load_state_dict(state)


def test_bad_config_values() -> None:
    with pytest.raises(ValueError, match="num_envs"):
        PendulumEnv(PendulumCfg(num_envs=0))
    with pytest.raises(ValueError, match="dtype.*allowed"):
        PendulumEnv(PendulumCfg(dtype="float16"))
    with pytest.raises(KeyError, match="valid tasks: .*pendulum"):
        get_task("pendullum")


@pytest.mark.parametrize("name", ["pendulum", "cartpole-swingup"])
def test_a_non_finite_action_ends_only_its_episode(name: str) -> None:
    """A NaN or ±inf action ends its env's episode (terminated, reward 0, counted as ``nonfinite_actions``), never
    reaches the state or the stored action, and leaves the other envs alone (their trajectories are unchanged)."""
    spec = get_task(name)
    cfg = spec.env_cfg()
    cfg.num_envs = 4
    env, twin = spec.build(cfg, seed=0), spec.build(cfg, seed=0)
    assert isinstance(env, TorchTask)
    g = torch.Generator().manual_seed(0)
    bad_at = {2: (1, float("nan")), 5: (3, float("-inf")), 9: (1, float("inf"))}
    for step in range(12):
        actions = torch.randn(4, 1, generator=g)
        clean = actions.clone()
        if step in bad_at:
            env_id, value = bad_at[step]
            actions[env_id] = value
        obs, reward, terminated, _, extras = env.step(actions)
        twin_obs, twin_reward, *_ = twin.step(clean)
        expected = torch.zeros(4, dtype=torch.bool)
        if step in bad_at:
            expected[bad_at[step][0]] = True
        assert terminated.tolist() == expected.tolist(), step
        assert int(extras["counts"]["nonfinite_actions"]) == int(expected.sum())
        assert torch.isfinite(obs["policy"]).all() and torch.isfinite(reward).all()
        assert torch.isfinite(extras["final_obs"]["policy"]).all() and torch.isfinite(env.action).all()
        assert (reward[expected] == 0).all()
        hit = {env_id for at, (env_id, _) in bad_at.items() if at <= step}
        for i in set(range(4)) - hit:  # envs never given a bad action follow the clean twin exactly
            assert torch.equal(obs["policy"][i], twin_obs["policy"][i]) and reward[i] == twin_reward[i]
