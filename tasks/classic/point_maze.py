"""Point-mass maze: a sparse-reward, hard-exploration, long-horizon goal-reaching task (issue 15, JSRL), pure torch.

A point mass in a maze of 1 m grid cells (D4RL maze2d style ASCII layouts: ``#`` wall, ``S`` start cell, ``G`` goal
cell). Positions are in metres with the origin at the layout's bottom-left corner, so every wall face lies on an
integer coordinate. Per step (dt = 0.1 s), the action ``u ∈ [−1, 1]²`` is a force per unit mass, semi-implicit Euler:

    v' = v + dt (a_max u − c v)          (damped double integrator; terminal speed a_max / c = 2 m/s per axis)
    p' = p + dt v'                       then walls are resolved one axis at a time (x, then y)

Collisions are a swept clamp on the grid, batched and without host sync: moving along x at height y, a column of cells
is solid when every cell row touching y is a wall there (two rows when y lies exactly on a cell boundary, so a point
slides along a face past the seams of a long wall and never slips through the crack between two wall cells); x' is
clamped to the nearest solid column face between x and x', and the x velocity is zeroed where it was clamped (an
inelastic contact). Then the same along y at the new x. No step can cross a wall, however fast.

Start uniform within ``start_range`` of the ``S`` cell's centre, goal within ``goal_jitter`` of the ``G`` cell's centre.
The straight line between them is blocked, so random actions rarely arrive: Gaussian actions of std 1 (PPO's initial
policy) succeed in ~0.7 % of U episodes (8,192 episodes, 500 steps each) and in none of the S's. Sparse reward 1 on
the step that reaches ``‖p − g‖ < goal_radius``, which terminates the episode (``extras["success"]``); truncation
after ``max_episode_steps``. Observation ``policy`` = ``critic`` = (position, velocity / terminal speed,
goal), positions mapped to [−1, 1] over the layout's bounding box.

:func:`point_maze_guide` is the task's imperfect scripted guide (JSRL's π^g, ``rsl-rl record-demos --source
scripted``); tests/tasks/test_point_maze.py measures its success.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.env import Env, StepResult
from tasks.classic.torch_task import TorchTask
from tasks.task import RewardTerm

LAYOUTS: dict[str, tuple[str, ...]] = {
    # A U: the goal is 2 m above the start behind a wall; the way round is 8 m long (the guide needs ~96 steps).
    "u": (
        "######",
        "#G...#",
        "####.#",
        "#S...#",
        "######",
    ),
    # An S: two walls with gaps at alternate ends; 12 m of path up a switchback (the guide needs ~142 steps).
    "s": (
        "#######",
        "#G....#",
        "#####.#",
        "#.....#",
        "#.#####",
        "#S....#",
        "#######",
    ),
}


@dataclass
class Maze:
    """A layout on a device: the wall grid and the cell centres, with rows indexed from the bottom (y up)."""

    wall: torch.Tensor
    """``bool [rows, cols]``: cell ``[j, i]`` spans x ∈ [i, i+1], y ∈ [j, j+1] (m)."""
    start: torch.Tensor
    """Centre of the start cell ``[2]``."""
    goal: torch.Tensor
    """Centre of the goal cell ``[2]``."""
    half: torch.Tensor
    """Half the bounding box ``[2]``; the box's centre is ``half`` too (its corner is the origin)."""
    next_target: torch.Tensor
    """``[rows, cols, 2]``: where the guide heads from each cell -- the centre of the next cell on a shortest path to
    the goal cell (a wall cell, touched on its face, acts as its free neighbour nearest to the goal)."""


def build_maze(layout: str, device: torch.device, dtype: torch.dtype) -> Maze:
    """Parse ``LAYOUTS[layout]`` and solve it once, on the host, by breadth-first search from the goal cell."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}; allowed: {list(LAYOUTS)}")
    grid = LAYOUTS[layout][::-1]  # row 0 at the bottom
    rows, cols = len(grid), len(grid[0])
    find = {ch: (j, row.index(ch)) for j, row in enumerate(grid) for ch in "SG" if ch in row}
    free = [[ch != "#" for ch in row] for row in grid]
    dist = [[-1] * cols for _ in range(rows)]
    dist[find["G"][0]][find["G"][1]] = 0
    queue = deque([find["G"]])
    while queue:
        j, i = queue.popleft()
        for nj, ni in ((j + 1, i), (j - 1, i), (j, i + 1), (j, i - 1)):
            if 0 <= nj < rows and 0 <= ni < cols and free[nj][ni] and dist[nj][ni] < 0:
                dist[nj][ni] = dist[j][i] + 1
                queue.append((nj, ni))
    if dist[find["S"][0]][find["S"][1]] < 0:
        raise ValueError(f"layout {layout!r}: the goal cell cannot be reached from the start cell")

    def nearest(j: int, i: int) -> tuple[int, int]:
        """The reachable cell among (j, i)'s neighbours, and itself, closest to the goal."""
        cells = [(j, i), (j + 1, i), (j - 1, i), (j, i + 1), (j, i - 1)]
        cells = [(a, b) for a, b in cells if 0 <= a < rows and 0 <= b < cols and dist[a][b] >= 0]
        return min(cells, key=lambda c: dist[c[0]][c[1]], default=(j, i))

    target = []
    for j in range(rows):
        for i in range(cols):
            # A wall cell (its face is touched) acts as its free neighbour closest to the goal.
            cell = (j, i) if free[j][i] else nearest(j, i)
            nj, ni = nearest(*cell)
            target.append((ni + 0.5, nj + 0.5))
    as_tensor = {"device": device, "dtype": dtype}
    return Maze(
        wall=torch.tensor([[not f for f in row] for row in free], dtype=torch.bool, device=device),
        start=torch.tensor([find["S"][1] + 0.5, find["S"][0] + 0.5], **as_tensor),
        goal=torch.tensor([find["G"][1] + 0.5, find["G"][0] + 0.5], **as_tensor),
        half=torch.tensor([cols / 2.0, rows / 2.0], **as_tensor),
        next_target=torch.tensor(target, **as_tensor).view(rows, cols, 2),
    )


def sweep(start: torch.Tensor, end: torch.Tensor, solid: torch.Tensor) -> torch.Tensor:
    """Clamp a move along one axis from ``start`` to ``end`` (``[N]``, cell units) at the first solid cell face.

    ``solid``: ``bool [N, K]``, cell ``k`` spans [k, k+1] along the axis. Faces ahead (k ≥ start) bound the move from
    above, faces behind (k + 1 ≤ start) from below; ``start`` is never inside a solid cell.
    """
    k = torch.arange(solid.shape[-1], device=start.device, dtype=start.dtype)
    s = start.unsqueeze(-1)
    upper = torch.where(solid & (k >= s), k, torch.inf).amin(-1)
    lower = torch.where(solid & (k + 1 <= s), k + 1, -torch.inf).amax(-1)
    return torch.minimum(torch.maximum(end, lower), upper)


def touching(coord: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``[N]`` of the (one or two) cells whose closed span contains ``coord``: ⌈c⌉ − 1 and ⌊c⌋, clamped."""
    return (torch.ceil(coord).long() - 1).clamp(0, size - 1), torch.floor(coord).long().clamp(0, size - 1)


def reached_goal(env: PointMazeEnv) -> torch.Tensor:
    """1 on the step the point comes within ``goal_radius`` of the goal (the sparse reward), else 0."""
    return env.success.to(env.dtype)


def point_maze_rewards() -> dict[str, RewardTerm]:
    return {"goal": RewardTerm(reached_goal, weight=1.0)}


@dataclass
class PointMazeCfg:
    """Point-mass maze parameters; the defaults are the U-maze the JSRL experiments use."""

    num_envs: int = 256
    """Parallel mazes."""
    layout: str = "u"
    """Maze: ``u`` (8 m around one wall) or ``s`` (12 m up a switchback)."""
    max_episode_steps: int = 500
    """Truncation length H_max (50 s); the perfect guide needs ~100 steps in the U, ~150 in the S."""
    dt: float = 0.1
    """Integration step (s)."""
    max_accel: float = 1.0
    """Acceleration at |u| = 1 (m/s²)."""
    damping: float = 0.5
    """Linear velocity damping c (1/s): terminal speed max_accel / damping (2 m/s) per axis."""
    start_range: float = 0.25
    """Start position ~ U(±start_range) per axis around the start cell's centre (m)."""
    goal_jitter: float = 0.2
    """Goal position ~ U(±goal_jitter) per axis around the goal cell's centre (m); > 0 for the guide's mistakes."""
    goal_radius: float = 0.3
    """Success: the point within this distance of the goal (m)."""
    guide_mistake_prob: float = 0.3
    """Chance per episode that :func:`point_maze_guide` heads straight for the goal and gets stuck (its failures)."""
    dtype: str = "float32"
    """State precision."""
    rewards: dict[str, RewardTerm] = field(default_factory=point_maze_rewards)
    """Reward terms (sparse: 1 on success)."""

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout={self.layout!r}; allowed: {list(LAYOUTS)}")
        for name in ("dt", "max_accel", "damping", "goal_radius"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        if not 0.0 <= self.start_range < 0.5 or not 0.0 <= self.goal_jitter < 0.5:
            raise ValueError("start_range and goal_jitter must lie in [0, 0.5): the point starts inside its cell")
        if not 0.0 <= self.guide_mistake_prob <= 1.0:
            raise ValueError(f"guide_mistake_prob={self.guide_mistake_prob} must lie in [0, 1]")


class PointMazeEnv(TorchTask):
    """Batched point-mass maze; state ``(x, y, vx, vy, goal_x, goal_y)`` in metres and m/s."""

    state_dim = 6
    num_actions = 2
    action_limit = 1.0

    def __init__(self, cfg: PointMazeCfg, device: torch.device | str = "cpu", seed: int = 0) -> None:
        self.step_dt = cfg.dt
        super().__init__(cfg, device, seed)

    def init_buffers(self) -> None:
        super().init_buffers()
        # Built once: a tensor made from Python numbers inside a step would wait for the GPU every time.
        self.maze = build_maze(self.cfg.layout, self.device, self.dtype)
        self.wall_columns = self.maze.wall.t().contiguous()  # [cols, rows]: a column of cells along y
        self.speed = self.cfg.max_accel / self.cfg.damping
        self.success = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)

    def sample_initial_state(self, n: int) -> torch.Tensor:
        c, m = self.cfg, self.maze
        start = m.start + self.uniform(n, -c.start_range, c.start_range, 2)
        goal = m.goal + self.uniform(n, -c.goal_jitter, c.goal_jitter, 2)
        return torch.cat([start, torch.zeros_like(start), goal], dim=-1)

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        pos, vel, goal = state[:, 0:2], state[:, 2:4], state[:, 4:6]
        vel = vel + c.dt * (c.max_accel * action - c.damping * vel)  # semi-implicit Euler of v̇ = a_max u − c v
        proposed = pos + c.dt * vel
        rows, cols = self.maze.wall.shape
        # x first, at the old y: a column is solid where every cell row touching y is a wall.
        lo, hi = touching(pos[:, 1], rows)
        x = sweep(pos[:, 0], proposed[:, 0], self.maze.wall[lo] & self.maze.wall[hi])
        # then y, at the new x.
        lo, hi = touching(x, cols)
        y = sweep(pos[:, 1], proposed[:, 1], self.wall_columns[lo] & self.wall_columns[hi])
        # Inelastic contact: the velocity into a face is lost.
        vx = torch.where(x == proposed[:, 0], vel[:, 0], 0.0)
        vy = torch.where(y == proposed[:, 1], vel[:, 1], 0.0)
        return torch.cat([torch.stack([x, y, vx, vy], dim=-1), goal], dim=-1)

    def physics_step(self) -> torch.Tensor:
        invalid = super().physics_step()
        # The state this step reached, before any automatic reset: reward, termination and extras["success"] read it.
        self.success = (self.state[:, 0:2] - self.state[:, 4:6]).norm(dim=-1) < self.cfg.goal_radius
        return invalid

    def step(self, actions: torch.Tensor) -> StepResult:
        obs, reward, terminated, truncated, extras = super().step(actions)
        extras["success"] = self.success
        return obs, reward, terminated, truncated, extras

    def terminated(self) -> torch.Tensor:
        return self.success

    def observe(self) -> TensorDict:
        half = self.maze.half
        pos, vel, goal = self.state[:, 0:2], self.state[:, 2:4], self.state[:, 4:6]
        obs = torch.cat([(pos - half) / half, vel / self.speed, (goal - half) / half], dim=-1).float()
        return TensorDict({"policy": obs, "critic": obs.clone()}, batch_size=[self.num_envs], device=self.device)

    def deployment_spec(self) -> dict[str, Any]:
        terms = [("position", 2), ("velocity", 2), ("goal", 2)]
        action = {"names": ["force_x", "force_y"], "default": [0.0, 0.0], "scale": [self.cfg.max_accel] * 2}
        return {"observation": {"policy": terms}, "action": {**action, "low": [-1.0, -1.0], "high": [1.0, 1.0]}}


def point_maze_guide(env: Env, mistake_prob: float | None = None) -> Callable[[TensorDict], torch.Tensor]:
    """The task's imperfect guide: a PD waypoint follower through the maze that, in a fraction of episodes, heads
    straight for the goal instead and pins itself against a wall (success ≈ 1 − mistake_prob).

    Waypoints: from the cell it is in, the guide heads for the centre of the next cell on a shortest path to the goal
    cell (:class:`Maze`'s ``next_target``), and in the goal cell for the goal itself, with the PD law
    ``u = clip(kp (target − p) − kd v, −1, 1)``.

    Mistakes, stateless and deterministic given the env's seed: the goal's jitter ``(ox, oy) ~ U(0, 1)²`` (normalised
    to the jitter square, read from the observation) gives a per-episode coin ``frac(7 ox + 13 oy) ~ U(0, 1)`` (exactly
    uniform: ``frac(7 ox)`` is, and adding an independent term modulo 1 keeps it so). Where it is below
    ``mistake_prob`` the target is the goal itself, ignoring the walls: a local minimum of the distance behind the
    wall that separates start and goal. The guide keeps no state, so any env instance, and JSRL's combined policy, can
    call it on any batch; noise added to the goal observation would redraw the coin every step.

    ``mistake_prob``: None takes the env config's ``guide_mistake_prob``; 0 is the perfect guide.
    """
    cfg: PointMazeCfg = env.cfg  # pyright: ignore[reportAttributeAccessIssue]
    prob = cfg.guide_mistake_prob if mistake_prob is None else mistake_prob
    if prob > 0 and cfg.goal_jitter <= 0:
        raise ValueError("point_maze_guide's mistakes are drawn from the goal's jitter: set goal_jitter > 0")
    maze = build_maze(cfg.layout, env.device, torch.float32)
    rows, cols = maze.wall.shape
    targets = maze.next_target.view(-1, 2)
    goal_cell = maze.goal.floor().long()
    # Gains in terminal-speed units: kp 2/s aims at 1 m/s from 0.5 m away; kd 1.5 damps the approach.
    kp, kd, speed = 2.0, 1.5, cfg.max_accel / cfg.damping

    def act(obs: TensorDict) -> torch.Tensor:
        policy = obs["policy"].float()
        pos = policy[:, 0:2] * maze.half + maze.half
        vel = policy[:, 2:4] * speed
        goal = policy[:, 4:6] * maze.half + maze.half
        cell = torch.stack([pos[:, 0].floor().clamp(0, cols - 1), pos[:, 1].floor().clamp(0, rows - 1)], -1).long()
        target = targets[cell[:, 1] * cols + cell[:, 0]]
        in_goal_cell = (cell == goal_cell).all(dim=-1, keepdim=True)
        if prob > 0:
            jitter = ((goal - maze.goal) / (2.0 * cfg.goal_jitter) + 0.5).clamp(0.0, 1.0)
            coin = torch.frac(7.0 * jitter[:, 0] + 13.0 * jitter[:, 1])
            in_goal_cell = in_goal_cell | (coin < prob).unsqueeze(-1)
        target = torch.where(in_goal_cell, goal, target)
        return (kp * (target - pos) - kd * vel).clamp(-1.0, 1.0)

    return act
