"""The point-mass maze (tasks/classic/point_maze.py, issue 15): walls hold at any speed, the sparse reward and its
termination, truncation, the env contract, the guide's success rates (imperfect 60–80 %, perfect ≥ 95 %, random
actions < 5 %), exact resume, and the gymnasium adapter."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from rsl_rl.registry import get_task
from tasks.classic.point_maze import LAYOUTS, PointMazeCfg, PointMazeEnv, point_maze_guide


def _free(layout: str, points: torch.Tensor, tol: float = 1e-5) -> torch.Tensor:
    """``bool [M]``: each point lies in free space -- some free grid cell's closed square holds it (an independent
    reading of the ASCII layout, rows from the bottom, 1 m cells)."""
    grid = LAYOUTS[layout][::-1]
    free = torch.tensor([[ch != "#" for ch in row] for row in grid])
    rows, cols = free.shape
    out = torch.zeros(points.shape[0], dtype=torch.bool)
    x, y = points[:, 0].double(), points[:, 1].double()
    for i in (torch.floor(x - tol), torch.floor(x + tol)):
        for j in (torch.floor(y - tol), torch.floor(y + tol)):
            inside = (i >= 0) & (i < cols) & (j >= 0) & (j < rows)
            cell = free[j.long().clamp(0, rows - 1), i.long().clamp(0, cols - 1)]
            out |= inside & cell
    return out


def _run_first_episodes(env: PointMazeEnv, policy: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Success ``bool [N]`` and length ``[N]`` of every env's first episode under ``policy(obs) -> actions``."""
    n = env.num_envs
    obs = env.reset()
    done = torch.zeros(n, dtype=torch.bool)
    success = torch.zeros(n, dtype=torch.bool)
    length = torch.zeros(n, dtype=torch.long)
    for t in range(env.max_episode_length):
        obs, _, terminated, truncated, extras = env.step(policy(obs))
        first = (terminated | truncated) & ~done
        success |= first & extras["success"]
        length = torch.where(first, t + 1, length)
        done |= terminated | truncated
    assert done.all()
    return success, length


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("max_accel", [1.0, 40.0])  # 40: up to 8 m per step, far more than a cell
def test_walls_are_never_crossed(layout: str, max_accel: float) -> None:
    n = 512
    cfg = PointMazeCfg(num_envs=n, layout=layout, max_accel=max_accel, goal_radius=1e-6, max_episode_steps=100_000)
    env = PointMazeEnv(cfg, seed=0)
    g = torch.Generator().manual_seed(0)
    pos = env.state[:, 0:2].clone()
    samples = torch.linspace(0.0, 1.0, 33).view(1, -1)
    for _ in range(400):
        env.step(torch.randn(n, 2, generator=g).sign())  # bang-bang: the fastest random walk
        new = env.state[:, 0:2].clone()
        # The move is x first, then y: every point of that L-shaped path is free, so no wall was tunnelled through.
        leg_x = torch.stack([pos[:, :1] + samples * (new[:, :1] - pos[:, :1]), pos[:, 1:].expand(-1, 33)], dim=-1)
        leg_y = torch.stack([new[:, :1].expand(-1, 33), pos[:, 1:] + samples * (new[:, 1:] - pos[:, 1:])], dim=-1)
        path = torch.cat([leg_x, leg_y], dim=1).view(-1, 2)
        assert _free(layout, path).all(), "a point entered a wall"
        pos = new
    assert torch.isfinite(env.state).all()
    # The walk explored: contacts happened (velocities zeroed) and the points spread over the maze.
    assert pos.std(dim=0).min() > 0.3


def test_a_point_pressed_against_a_wall_slides_along_it() -> None:
    """Under the U's wall (cells x ∈ [0, 4], y ∈ [2, 3]), pushing up and right: the point stops at the face y = 2,
    loses its upward velocity, slides right across the seams between wall cells and rises past the wall's end. Pushing
    left and down from x = 3.5, a point slides along the floor across its seams into the corner (1, 1)."""
    env = PointMazeEnv(PointMazeCfg(num_envs=2, goal_radius=1e-6), seed=0)
    state = env.state.clone()
    state[:, 0:4] = torch.tensor([[1.5, 1.98, 0.0, 1.0], [3.5, 1.2, 0.0, 0.0]])  # the first 0.1 s from the face
    env.state = state
    push = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    env.step(push)
    assert env.state[0, 1] == 2.0 and env.state[0, 3] == 0.0  # at the face, upward velocity lost
    ys = []
    for _ in range(40):
        env.step(push)
        ys.append(env.state[0, 1].item())
    assert env.state[0, 0] > 4.0 and max(ys) > 2.5  # slid under the whole wall, then rose past its end
    assert env.state[1, 0] == 1.0 and env.state[1, 1] == 1.0  # in the corner of the outer walls, at rest
    assert torch.equal(env.state[1, 2:4], torch.zeros(2))


def test_sparse_reward_is_one_only_on_the_success_step_which_terminates() -> None:
    env = PointMazeEnv(PointMazeCfg(num_envs=3, goal_radius=0.3), seed=0)
    env.reset()
    goal = env.state[:, 4:6].clone()
    state = env.state.clone()
    # At rest, 0.25 m (inside), 0.35 m (outside) and 0.29 m (inside, diagonal) from the goal.
    offsets = torch.tensor([[0.25, 0.0], [0.0, -0.35], [0.205, -0.205]])
    state[:, 0:2], state[:, 2:4] = goal + offsets, 0.0
    env.state = state
    obs, reward, terminated, truncated, extras = env.step(torch.zeros(3, 2))
    assert reward.tolist() == [1.0, 0.0, 1.0] and reward.dtype == torch.float32
    assert terminated.tolist() == [True, False, True] and not truncated.any()
    assert torch.equal(extras["success"], terminated)
    # The final observation is the success state; the observation returned is a fresh start in the start cell.
    half = env.maze.half
    final_pos = extras["final_obs"]["policy"][:, 0:2] * half + half
    assert torch.allclose(final_pos[[0, 2]], (goal + offsets)[[0, 2]], atol=1e-5)
    start = obs["policy"][[0, 2], 0:2] * half + half
    assert ((start - env.maze.start).abs() <= env.cfg.start_range + 1e-5).all()
    assert env.episode_length_buf.tolist() == [0, 1, 0]


def test_guide_episodes_earn_exactly_one_on_their_last_step() -> None:
    env = PointMazeEnv(PointMazeCfg(num_envs=64), seed=1)
    guide = point_maze_guide(env, mistake_prob=0.0)
    obs = env.reset()
    returns = torch.zeros(64)
    for _ in range(150):
        obs, reward, terminated, truncated, extras = env.step(guide(obs))
        assert torch.equal(reward, extras["success"].float()) and torch.equal(terminated, extras["success"])
        assert torch.equal(reward != 0, terminated)  # 1 on the success step only, 0 on every other
        returns += reward
    assert returns.min() >= 1.0  # each env succeeded at least once within 150 steps ...
    assert returns.max() <= 2.0  # ... and at most one reward per episode (the guide needs ~100 steps each)


def test_truncation_at_max_episode_steps() -> None:
    env = PointMazeEnv(PointMazeCfg(num_envs=4, max_episode_steps=7), seed=0)
    env.reset()
    for t in range(1, 22):
        before = env.state[:, 0:2].clone()
        obs, reward, terminated, truncated, extras = env.step(torch.zeros(4, 2))  # at rest: never reaches the goal
        assert not terminated.any() and not reward.any()
        assert truncated.all() == (t % 7 == 0) and truncated.any() == (t % 7 == 0)
        if t % 7 == 0:  # bootstrapping reads the state reached before the reset
            half = env.maze.half
            assert torch.allclose(extras["final_obs"]["policy"][:, 0:2] * half + half, before, atol=1e-6)
            assert not torch.equal(obs["policy"][:, 0:2], extras["final_obs"]["policy"][:, 0:2])


def test_env_contract_and_registration() -> None:
    spec = get_task("point-maze")
    assert spec.scripted_policy is point_maze_guide and spec.sac_train_cfg is not None
    n = 8
    cfg = spec.env_cfg()
    cfg.num_envs, cfg.max_episode_steps = n, 5
    env = spec.build(cfg, seed=0)
    assert env.num_actions == 2 and env.step_dt == pytest.approx(0.1)
    low, high = env.action_bounds() or (None, None)
    assert low is not None and high is not None
    assert torch.equal(low, -torch.ones(2)) and torch.equal(high, torch.ones(2))
    obs = env.reset()
    assert set(obs.keys()) == {"policy", "critic"}
    assert obs["policy"].shape == (n, 6) and obs["policy"].dtype == torch.float32
    assert torch.equal(obs["critic"], obs["policy"])
    assert obs["policy"].abs().max() <= 1.0  # positions normalised over the maze, at rest
    g = torch.Generator().manual_seed(0)
    episodes = torch.zeros(n, dtype=torch.long)
    for _ in range(12):
        obs, reward, terminated, truncated, extras = env.step(2 * torch.rand(n, 2, generator=g) - 1)
        assert reward.shape == (n,) and reward.dtype == torch.float32
        assert terminated.dtype == truncated.dtype == torch.bool and not (terminated & truncated).any()
        assert extras["success"].shape == (n,) and extras["success"].dtype == torch.bool
        assert extras["final_obs"]["policy"].shape == (n, 6) and set(extras["final_obs"].keys()) == {"policy", "critic"}
        assert torch.isfinite(obs["policy"]).all() and (obs["policy"][:, 0:2].abs() <= 1.0).all()
        episodes += (terminated | truncated).long()
    assert (episodes == 2).all()  # auto-reset after 5 and 10 steps
    with pytest.raises(ValueError, match="layout.*allowed"):
        PointMazeCfg(layout="spiral")
    with pytest.raises(ValueError, match="goal_jitter"):
        PointMazeCfg(goal_jitter=0.6)
    with pytest.raises(ValueError, match="goal_jitter > 0"):
        point_maze_guide(PointMazeEnv(PointMazeCfg(num_envs=1, goal_jitter=0.0)))


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_guide_success_rates(layout: str) -> None:
    """Over 512 episodes: the guide 60–80 %, its perfect variant ≥ 95 %, random actions (PPO's initial Gaussian,
    std 1) < 5 %, and the guide that always errs ~0 % (the straight line to the goal ends against a wall)."""
    n = 512
    env = PointMazeEnv(PointMazeCfg(num_envs=n, layout=layout), seed=0)
    guide, _ = _run_first_episodes(env, point_maze_guide(env))
    perfect, length = _run_first_episodes(env, point_maze_guide(env, mistake_prob=0.0))
    always_errs, _ = _run_first_episodes(env, point_maze_guide(env, mistake_prob=1.0))
    g = torch.Generator().manual_seed(0)
    random, _ = _run_first_episodes(env, lambda obs: torch.randn(n, 2, generator=g))
    assert 0.6 <= guide.float().mean() <= 0.8
    assert perfect.float().mean() >= 0.95
    assert length.float().mean() < 0.4 * env.max_episode_length  # the horizon leaves the guide time to spare
    assert random.float().mean() < 0.05
    assert always_errs.float().mean() < 0.05


def test_guide_is_deterministic_given_the_seed() -> None:
    def actions(seed: int) -> list[torch.Tensor]:
        env = PointMazeEnv(PointMazeCfg(num_envs=16, max_episode_steps=40), seed=seed)
        guide = point_maze_guide(env)
        obs, out = env.reset(), []
        for _ in range(100):
            out.append(guide(obs))
            obs = env.step(out[-1])[0]
        return out

    first, second, other = actions(3), actions(3), actions(4)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_state_dict_round_trip_reproduces_the_future() -> None:
    env = PointMazeEnv(PointMazeCfg(num_envs=6, max_episode_steps=30), seed=3)
    g = torch.Generator().manual_seed(0)
    for _ in range(45):
        env.step(torch.randn(6, 2, generator=g))
    state = copy.deepcopy(env.state_dict())
    actions = [torch.randn(6, 2, generator=g) for _ in range(40)]
    first = [env.step(a)[0]["policy"] for a in actions]  # includes the time-outs at step 60
    other = PointMazeEnv(PointMazeCfg(num_envs=6, max_episode_steps=30), seed=99)
    other.load_state_dict(state)
    second = [other.step(a)[0]["policy"] for a in actions]
    assert all(torch.equal(x, y) for x, y in zip(first, second, strict=True))


def test_gymnasium_vector_adapter_wraps_it() -> None:
    pytest.importorskip("gymnasium")
    from gymnasium.spaces import Box

    from tasks.adapters import GymnasiumVectorEnv

    env = PointMazeEnv(PointMazeCfg(num_envs=4, max_episode_steps=3), seed=0)
    venv = GymnasiumVectorEnv(env)
    obs, _ = venv.reset(seed=1)
    assert obs.shape == (4, 6) and obs.dtype == np.float32
    space = venv.single_action_space
    assert isinstance(space, Box) and space.shape == (2,) and (space.high == 1.0).all()
    venv.action_space.seed(0)
    for _ in range(3):
        obs, reward, terminated, truncated, infos = venv.step(venv.action_space.sample())
    assert obs.shape == (4, 6) and reward.shape == (4,) and truncated.all() and not terminated.any()
    assert infos["_final_obs"].all() and infos["final_obs"][0].shape == (6,)
    venv.close()
