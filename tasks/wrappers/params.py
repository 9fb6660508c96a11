"""Physical parameters of a batched env, one scalar per env, addressed by name; and :class:`ModifiedParams`, the
wrapper that sets and reads them (RRLS's ``ModifiedParamsEnv``, for all envs of a batch at once).

A parameter is named in one of three ways:

* by an alias the task declares in its class attribute ``param_aliases`` (the names RRLS uses: ``torsomass``,
  ``worldfriction``, ``frontleftlegmass`` ...; the quadruped's ``friction``, ``added_mass``, ``motor_strength``);
* by model element, ``"<field>:<element>[:<column>]"``: ``field`` one of the simulator's per-world parameters
  (``body_mass``, ``geom_friction``, ``dof_damping``, ``actuator_gainprm`` ...), ``element`` the name of a body
  (``body_*``), geom (``geom_*``), joint (``dof_*``: all dofs of the joint) or actuator (``actuator_*``), or an
  ``fnmatch`` pattern that matches several (``geom_friction:*foot*``: one value for every foot), and ``column`` the
  entry of a multi-valued field (``geom_friction:floor:0`` = sliding friction; default 0);
* by a :class:`Parameter` object (a task's custom quantity, e.g. :class:`AttributeParam` for a torch controller's
  tensor).

A value is what the field holds (``mode="set"``, RRLS's convention: ``torsomass=2.0`` means 2 kg), or a factor on the
model's own value (``"scale"``), or an offset from it (``"add"``: an added payload). Writes go through
``Simulator.set_params``, which recomputes MuJoCo's derived constants after a mass change, on the device, for the
worlds in a mask; nothing here synchronises the host.
"""

from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDict

from rsl_rl.env import Env, StepResult
from tasks.wrappers.base import Wrapper, unwrap

MODES = ("set", "scale", "add")
# Which kind of model element a field's rows index.
_ELEMENT_KINDS = {"body_": "body", "geom_": "geom", "dof_": "joint", "actuator_": "actuator"}


class Parameter(ABC):
    """One physical quantity, a scalar per env."""

    name: str

    @abstractmethod
    def read(self, env: Any) -> torch.Tensor:
        """Current values ``[N]`` (``env`` is the task: :func:`unwrap` of a stack)."""

    @abstractmethod
    def write(self, env: Any, values: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Set the envs where ``mask`` (all if None) to ``values[N]``."""

    @abstractmethod
    def nominal(self, env: Any) -> float:
        """The value of the unmodified task."""


def _mode_apply(mode: str, nominal: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The field's content for parameter ``values``: the value itself, a factor on, or an offset from the nominal."""
    if mode == "scale":
        return nominal * values
    if mode == "add":
        return nominal + values
    return torch.broadcast_to(values, torch.broadcast_shapes(values.shape, nominal.shape))


def _mode_invert(mode: str, nominal: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    if mode == "scale":
        return content / nominal
    if mode == "add":
        return content - nominal
    return content


@dataclass
class ModelParam(Parameter):
    """A per-world model field at the named elements (one value written to each of them)."""

    field: str
    """A per-world model parameter of the simulator (``tasks/mujoco/config.py`` ``PARAM_FIELDS``)."""
    element: str
    """Name (or fnmatch pattern) of the body, geom, joint or actuator."""
    column: int = 0
    """Entry of a multi-valued field (``geom_friction`` column 0 = sliding friction)."""
    mode: str = "set"
    """``set`` (the value is the field's), ``scale`` (a factor on the model's value) or ``add`` (an offset)."""
    name: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"parameter mode={self.mode!r}; allowed: {list(MODES)}")
        self.name = self.name or f"{self.field}:{self.element}:{self.column}"
        # (simulator, element rows, the model's values at those rows), resolved at first use: built once, so reads
        # and writes in a step copy nothing from the host (``default_param`` builds a tensor from the model's array).
        self._index: tuple[Any, torch.Tensor, torch.Tensor] | None = None
        self._multi = False  # the field holds several entries per element (a column is chosen)

    def _rows(self, env: Any) -> torch.Tensor:
        return self._resolve(env)[1]

    def _defaults(self, env: Any) -> torch.Tensor:
        """The model's own values of the field at the rows (``[k]`` or ``[k, columns]``)."""
        return self._resolve(env)[2]

    def _resolve(self, env: Any) -> tuple[Any, torch.Tensor, torch.Tensor]:
        sim = getattr(env, "sim", None)
        if sim is None:
            raise TypeError(f"{type(env).__name__} has no simulator: '{self.name}' addresses a MuJoCo model field")
        if self._index is not None and self._index[0] is sim:
            return self._index
        if self.field not in sim.params:
            raise KeyError(
                f"'{self.name}': the task does not vary '{self.field}' per world; it declares {list(sim.params)} "
                f"(a task lists them in its class attribute ``params``)"
            )
        kind = next((k for prefix, k in _ELEMENT_KINDS.items() if self.field.startswith(prefix)), None)
        if kind is None:
            raise ValueError(f"'{self.name}': cannot address elements of field '{self.field}'")
        model = sim.model
        count = {"body": model.nbody, "geom": model.ngeom, "joint": model.njnt, "actuator": model.nu}[kind]
        names = [getattr(model, kind)(i).name for i in range(count)]
        ids = [i for i, n in enumerate(names) if fnmatch.fnmatchcase(n, self.element)]
        if not ids:
            raise KeyError(f"'{self.name}': no {kind} named '{self.element}'; {kind}s: {[n for n in names if n]}")
        if kind == "joint":  # a joint's dofs: jnt_dofadr .. + its number of dofs (free 6, ball 3, slide/hinge 1)
            width = {0: 6, 1: 3, 2: 1, 3: 1}
            ids = [int(model.jnt_dofadr[j]) + k for j in ids for k in range(width[int(model.jnt_type[j])])]
        shape = sim.params[self.field].shape
        self._multi = len(shape) > 2
        if len(shape) > 2 and not 0 <= self.column < shape[2]:
            raise ValueError(f"'{self.name}': column {self.column} outside the field's {shape[2]} entries")
        rows = torch.as_tensor(ids, device=sim.device)
        self._index = (sim, rows, sim.default_param(self.field)[rows])
        return self._index

    def _view(self, content: torch.Tensor) -> torch.Tensor:
        """The column of a multi-valued field (``content``: the field at the rows, with or without the world dim)."""
        return content[..., self.column] if self._multi else content

    def read(self, env: Any) -> torch.Tensor:
        rows = self._rows(env)
        content = self._view(env.sim.params[self.field][:, rows])[:, 0]  # all named elements hold the same value
        nominal = self._view(self._defaults(env))[0]
        return _mode_invert(self.mode, nominal, content)

    def write(self, env: Any, values: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        rows = self._rows(env)
        sim = env.sim
        field = sim.params[self.field].clone()
        nominal = self._view(self._defaults(env))  # [k]
        values = values.to(field.device, field.dtype).reshape(-1, 1)  # [N, 1]
        content = _mode_apply(self.mode, nominal.unsqueeze(0), values)  # [N, k]
        if self._multi:
            field[:, rows, self.column] = content
        else:
            field[:, rows] = content
        sim.set_params(self.field, field, mask)

    def nominal(self, env: Any) -> float:
        model_value = self._view(self._defaults(env))[0]
        return float(_mode_invert(self.mode, model_value, model_value))


@dataclass
class AttributeParam(Parameter):
    """A tensor attribute of the task (``motor.strength``: ``[N]`` or ``[N, k]``, every column set to the value)."""

    path: str
    """Dotted attribute path from the task."""
    nominal_value: float = 1.0
    """The value of the unmodified task."""
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.path

    def _tensor(self, env: Any) -> torch.Tensor:
        obj = env
        for part in self.path.split("."):
            if not hasattr(obj, part):
                raise AttributeError(f"'{self.name}': {type(obj).__name__} has no attribute '{part}' ({self.path})")
            obj = getattr(obj, part)
        if not isinstance(obj, torch.Tensor):
            raise TypeError(f"'{self.name}': {self.path} is a {type(obj).__name__}, not a tensor")
        return obj

    def read(self, env: Any) -> torch.Tensor:
        t = self._tensor(env)
        return t if t.dim() == 1 else t[:, 0]

    def write(self, env: Any, values: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        t = self._tensor(env)
        v = values.to(t.device, t.dtype).reshape(-1, *([1] * (t.dim() - 1))).expand_as(t)
        m = torch.ones(t.shape[0], dtype=torch.bool, device=t.device) if mask is None else mask.to(t.device)
        t.copy_(torch.where(m.reshape(-1, *([1] * (t.dim() - 1))), v, t))  # in place: the task holds the tensor

    def nominal(self, env: Any) -> float:
        return self.nominal_value


def resolve_param(env: Any, spec: str | Parameter) -> Parameter:
    """The :class:`Parameter` that ``spec`` names on ``env`` (a task or a wrapper stack): an alias the task declares in
    ``param_aliases``, a ``"<field>:<element>[:<column>]"`` address, or a Parameter itself."""
    if isinstance(spec, Parameter):
        return spec
    task = unwrap(env)
    aliases: Mapping[str, str | Parameter] = getattr(task, "param_aliases", {})
    if spec in aliases:
        target = aliases[spec]
        param = resolve_param(env, target) if isinstance(target, str) else target
        return param
    parts = spec.split(":")
    if len(parts) in (2, 3) and all(parts):
        try:
            column = int(parts[2]) if len(parts) == 3 else 0
        except ValueError:
            raise ValueError(f"parameter '{spec}': the column must be an integer") from None
        return ModelParam(parts[0], parts[1], column, name=spec)
    raise KeyError(
        f"unknown parameter '{spec}' for {type(task).__name__}; its names: {sorted(aliases) or 'none'}; or address a "
        "model element as '<field>:<element>[:<column>]' (e.g. 'body_mass:torso', 'geom_friction:floor:0')"
    )


def _named(env: Any, names: Any) -> dict[str, Parameter]:
    """``{name: Parameter}`` for a sequence of names/Parameters (names kept as given)."""
    out: dict[str, Parameter] = {}
    for spec in names:
        param = resolve_param(env, spec)
        out[spec if isinstance(spec, str) else param.name] = param
    return out


class ModifiedParams(Wrapper):
    """Set and read physical parameters per env, by name, at any step or at each env's next reset.

    ``extras["params"]`` echoes the current values ``{name: [N]}`` every step (RRLS's ``info`` echo), and
    ``extras["log"]`` their means under ``params/<name>``.
    """

    def __init__(self, env: Env, names: Any) -> None:
        """``names``: the parameters this wrapper manages (aliases, addresses or :class:`Parameter` objects)."""
        super().__init__(env)
        self.task = unwrap(env)
        self.named = _named(env, names)
        for param in self.named.values():  # resolve (and check) every name now: nothing is built inside a step
            param.read(self.task)
        self._pending: dict[str, torch.Tensor] = {}  # values waiting for their env's next reset (NaN: none)

    def get_params(self) -> dict[str, torch.Tensor]:
        """Current values ``{name: [N]}``."""
        return {name: p.read(self.task) for name, p in self.named.items()}

    def nominal_params(self) -> dict[str, float]:
        """The unmodified task's values."""
        return {name: p.nominal(self.task) for name, p in self.named.items()}

    def set_params(
        self, values: Mapping[str, torch.Tensor | float], mask: torch.Tensor | None = None, at_reset: bool = False
    ) -> None:
        """Set parameters now (``at_reset=False``) or when each env in ``mask`` next resets (``True``: the values then
        hold from that env's next episode on). ``values[name]``: a float or ``[N]``."""
        for name, v in values.items():
            if name not in self.named:
                raise KeyError(f"parameter '{name}' is not managed by this wrapper; managed: {list(self.named)}")
            v = torch.as_tensor(v, dtype=torch.float32, device=self.device).expand(self.num_envs)
            if at_reset:
                pending = self._pending.get(name, torch.full((self.num_envs,), float("nan"), device=self.device))
                self._pending[name] = v if mask is None else torch.where(mask, v, pending)
            else:
                self.named[name].write(self.task, v, mask)

    def _apply_pending(self, done: torch.Tensor) -> None:
        for name, pending in self._pending.items():
            due = done & ~torch.isnan(pending)
            self.named[name].write(self.task, torch.nan_to_num(pending), due)
            self._pending[name] = torch.where(due, float("nan"), pending)

    def reset(self) -> TensorDict:
        self._apply_pending(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        return self.env.reset()

    def step(self, actions: torch.Tensor) -> StepResult:
        obs, reward, terminated, truncated, extras = self.env.step(actions)
        if self._pending:
            # The envs that ended were reset inside the step; their new parameters act from their next physics step.
            self._apply_pending(terminated | truncated)
        current = self.get_params()
        extras = dict(extras)
        extras["params"] = current
        extras["log"] = {**(extras.get("log") or {}), **{f"params/{k}": v.mean() for k, v in current.items()}}
        return obs, reward, terminated, truncated, extras
