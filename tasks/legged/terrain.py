"""Terrain for legged tasks: flat ground, or a grid of heightfield tiles (levels × types), with a curriculum.

Rough terrain (legged_gym / Isaac Lab layout, ``reference/legged.md`` §1.6, §2.4): grid rows are difficulty levels
(0 … L−1), columns are sub-terrain types in the configured proportions (smooth and rough slopes up/down, stairs up and
down, discrete obstacles). Every tile has a flat platform at its centre, where robots start. The curriculum moves a
robot one level up when it walked farther than half a tile during its episode and one level down when it covered less
than half of what its command asked for; past the last level it goes to a random one.

The same height map lives in the MuJoCo model (an ``hfield``) and as a torch tensor, from which the height scan is read
without ray casting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

TERRAIN_TYPES = ("slope_up", "slope_down", "rough", "stairs_up", "stairs_down", "obstacles")


@dataclass
class TerrainCfg:
    """Ground of a legged task."""

    kind: str = "flat"
    """``flat`` (a plane) or ``rough`` (heightfield tiles with a curriculum)."""
    num_levels: int = 6
    """Rows of tiles = difficulty levels."""
    num_cols: int = 6
    """Columns of tiles, split among the types by ``proportions``."""
    tile_size: float = 8.0
    """Tile edge (m)."""
    resolution: float = 0.1
    """Heightfield cell size (m)."""
    border: float = 4.0
    """Flat border around the grid (m)."""
    proportions: dict[str, float] = field(
        default_factory=lambda: {"slope_up": 0.1, "slope_down": 0.1, "rough": 0.2, "stairs_up": 0.25,
                                 "stairs_down": 0.2, "obstacles": 0.15}
    )  # fmt: skip
    """Share of columns per sub-terrain type; each type with a positive share gets a column (``column_types``)."""
    curriculum: bool = True
    """Move robots between levels by how far they walk."""
    max_init_level: int = 2
    """Initial levels are drawn from 0 … this."""
    platform: float = 2.5
    """Flat square at every tile centre (m)."""
    seed: int = 0
    """Seed of the random sub-terrains."""

    def __post_init__(self) -> None:
        if self.kind not in ("flat", "rough"):
            raise ValueError(f"terrain.kind={self.kind!r}; allowed: 'flat', 'rough'")
        unknown = set(self.proportions) - set(TERRAIN_TYPES)
        if unknown:
            raise ValueError(f"unknown terrain types {sorted(unknown)}; allowed: {list(TERRAIN_TYPES)}")
        if self.num_levels < 1 or self.num_cols < 1 or self.tile_size <= 0 or self.resolution <= 0:
            raise ValueError("num_levels, num_cols, tile_size and resolution must be positive")
        if any(not w >= 0 for w in self.proportions.values()) or sum(self.proportions.values()) <= 0:
            raise ValueError(f"terrain proportions must be >= 0 with a positive sum, got {self.proportions}")


def column_types(cfg: TerrainCfg) -> list[str]:
    """Sub-terrain type of each grid column, in contiguous blocks in ``TERRAIN_TYPES`` order.

    Every type with a positive proportion gets at least one column when there are enough columns (with 6 columns and
    6 types, one each); the remaining columns go one at a time to the type furthest below its share
    (``proportion · num_cols``). With fewer columns than types, the largest proportions get one column each.
    """
    weights = {k: cfg.proportions.get(k, 0.0) for k in TERRAIN_TYPES}
    total = sum(weights.values())
    share = {k: w / total * cfg.num_cols for k, w in weights.items()}
    present = [k for k in TERRAIN_TYPES if weights[k] > 0]
    if cfg.num_cols < len(present):  # sorted() is stable: equal proportions keep the TERRAIN_TYPES order
        present = sorted(present, key=lambda k: -weights[k])[: cfg.num_cols]
    counts = dict.fromkeys(present, 1)
    for _ in range(cfg.num_cols - len(present)):
        counts[max(present, key=lambda k: share[k] - counts[k])] += 1
    return [k for k in TERRAIN_TYPES if k in counts for _ in range(counts[k])]


# --- sub-terrains: heights [n, n] (m) of one tile at difficulty d ∈ [0, 1] -------------------------------------------


def _edge_distance(n: int, res: float) -> np.ndarray:
    """Distance (m) of every cell from the tile's border."""
    i = np.arange(n)
    d = np.minimum(i, n - 1 - i) * res
    return np.minimum(d[:, None], d[None, :])


def _platform_height(h: np.ndarray, n: int, res: float, platform: float) -> np.ndarray:
    """Flatten the centre square to the height of its edge, so robots start on level ground."""
    half = int(platform / res / 2)
    c = n // 2
    h = h.copy()
    h[c - half : c + half, c - half : c + half] = h[c - half, c]
    return h


def slope(n: int, res: float, d: float, platform: float, down: bool) -> np.ndarray:
    """Pyramid slope of gradient 0.4·d rising (or falling) towards a flat centre."""
    h = 0.4 * d * _edge_distance(n, res)
    h = _platform_height(h, n, res, platform)
    return -h if down else h


def rough(n: int, res: float, d: float, platform: float, rng: np.random.Generator) -> np.ndarray:
    """Uniform bumps of ±(0.02 + 0.08·d) m on 0.2 m blocks."""
    block = max(1, round(0.2 / res))
    amp = 0.02 + 0.08 * d
    coarse = rng.uniform(-amp, amp, size=(n // block + 1, n // block + 1))
    h = np.kron(coarse, np.ones((block, block)))[:n, :n]
    return _platform_height(h, n, res, platform)


def stairs(n: int, res: float, d: float, platform: float, down: bool) -> np.ndarray:
    """Square pyramid stairs, step height 0.05 + 0.18·d m, tread 0.3 m, climbing to the centre (or descending)."""
    step_h, tread = 0.05 + 0.18 * d, 0.3
    h = np.floor(_edge_distance(n, res) / tread) * step_h
    h = _platform_height(h, n, res, platform)
    return -h if down else h


def obstacles(n: int, res: float, d: float, platform: float, rng: np.random.Generator) -> np.ndarray:
    """20 random boxes 0.4–1.5 m wide, ±(0.05 + 0.15·d) m high, off the centre platform."""
    h = np.zeros((n, n))
    amp = 0.05 + 0.15 * d
    for _ in range(20):
        wx, wy = rng.integers(int(0.4 / res), int(1.5 / res) + 1, size=2)
        x, y = rng.integers(0, n - wx), rng.integers(0, n - wy)
        h[x : x + wx, y : y + wy] = rng.choice([-1.0, 1.0]) * amp
    half, c = int(platform / res / 2), n // 2
    h[c - half : c + half, c - half : c + half] = 0.0
    return h


def _tile(kind: str, n: int, res: float, d: float, platform: float, rng: np.random.Generator) -> np.ndarray:
    if kind in ("slope_up", "slope_down"):
        return slope(n, res, d, platform, down=kind == "slope_down")
    if kind in ("stairs_up", "stairs_down"):
        return stairs(n, res, d, platform, down=kind == "stairs_down")
    return rough(n, res, d, platform, rng) if kind == "rough" else obstacles(n, res, d, platform, rng)


def generate(cfg: TerrainCfg) -> tuple[np.ndarray, np.ndarray]:
    """Height map ``[rows, cols]`` (rows along y, cols along x, centred at the origin) and the tile centres
    ``[num_levels, num_cols, 3]`` (x, y, ground height)."""
    rng = np.random.default_rng(cfg.seed)
    n = round(cfg.tile_size / cfg.resolution)
    b = round(cfg.border / cfg.resolution)
    heights = np.zeros((cfg.num_cols * n + 2 * b, cfg.num_levels * n + 2 * b))
    kinds = column_types(cfg)
    centres = np.zeros((cfg.num_levels, cfg.num_cols, 3))
    # Cell i of a MuJoCo heightfield lies at -(size - 1)·res/2 + i·res.
    half_x = (heights.shape[1] - 1) * cfg.resolution / 2
    half_y = (heights.shape[0] - 1) * cfg.resolution / 2
    for level in range(cfg.num_levels):
        d = level / max(cfg.num_levels - 1, 1)
        for col in range(cfg.num_cols):
            tile = _tile(kinds[col], n, cfg.resolution, d, cfg.platform, rng)
            r0, c0 = b + col * n, b + level * n
            heights[r0 : r0 + n, c0 : c0 + n] = tile.T
            centres[level, col] = (
                (c0 + n // 2) * cfg.resolution - half_x,
                (r0 + n // 2) * cfg.resolution - half_y,
                tile[n // 2, n // 2],
            )
    return heights, centres


class HeightMap:
    """The terrain heights as a torch tensor: ground height under any (x, y), for spawning and height scans."""

    def __init__(self, heights: np.ndarray, resolution: float, device: torch.device) -> None:
        self.heights = torch.as_tensor(heights, dtype=torch.float32, device=device)
        self.resolution = resolution
        self.half = torch.tensor(
            [(heights.shape[1] - 1) * resolution / 2, (heights.shape[0] - 1) * resolution / 2], device=device
        )

    def height_at(self, xy: torch.Tensor) -> torch.Tensor:
        """Ground height ``[...]`` at points ``xy [..., 2]`` (bilinear, clamped to the map)."""
        rows, cols = self.heights.shape
        g = (xy.float() + self.half) / self.resolution
        x = g[..., 0].clamp(0, cols - 1.001)
        y = g[..., 1].clamp(0, rows - 1.001)
        x0, y0 = x.floor().long(), y.floor().long()
        fx, fy = x - x0, y - y0
        h = self.heights
        top = h[y0, x0] * (1 - fx) + h[y0, x0 + 1] * fx
        bottom = h[y0 + 1, x0] * (1 - fx) + h[y0 + 1, x0 + 1] * fx
        return top * (1 - fy) + bottom * fy


def update_levels(
    levels: torch.Tensor,
    distance: torch.Tensor,
    command_distance: torch.Tensor,
    tile_size: float,
    num_levels: int,
    random_level: torch.Tensor,
) -> torch.Tensor:
    """The game-inspired terrain curriculum (legged_gym), for envs ending an episode. All ``[N]``.

    up   if distance > tile_size / 2;
    down if distance < command_distance / 2 (the distance the command asked for, ‖v_cmd‖·T) and not up;
    a robot past the last level goes to ``random_level``; the level never drops below 0.
    """
    up = distance > tile_size / 2
    down = (distance < 0.5 * command_distance) & ~up
    new = levels + up.long() - down.long()
    new = torch.where(new >= num_levels, random_level, new)
    return new.clamp(min=0)
