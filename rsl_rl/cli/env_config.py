"""The resolved env config of a run as plain data (checkpoints, ``config.json``, policy metadata), and back.

An env config is a tree of dataclasses, dicts, tuples and scalars whose reward/event/termination terms hold functions.
Checkpoints load with ``torch.load(weights_only=True)`` and must never run code, so nothing here pickles a config or
imports a name read from a file:

* :func:`config_to_data` writes dataclass fields as dicts, tuples as lists, and a function as
  ``{"$function": "module:qualname"}``;
* :func:`config_from_data` starts from the task's registered default config and applies the stored values. A stored
  function is resolved only against the functions the default config itself names, or functions defined in the same
  (already imported) modules as those, e.g. the task's term modules. Anything else is an error naming the field.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import typing
from typing import Any

FUNCTION_KEY = "$function"


def function_name(func: Any) -> str:
    """``module:qualname`` of a function."""
    return f"{func.__module__}:{func.__qualname__}"


def config_to_data(value: Any, where: str = "env") -> Any:
    """Plain data (dict, list, str, int, float, bool, None) of a config tree; an unsupported value names its field."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: config_to_data(getattr(value, f.name), f"{where}.{f.name}") for f in _init_fields(value)}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"{where}: only dicts with string keys can be stored, got keys {list(value)}")
        return {k: config_to_data(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [config_to_data(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if inspect.isfunction(value) or inspect.isbuiltin(value):
        return {FUNCTION_KEY: function_name(value)}
    raise TypeError(
        f"{where}: a {type(value).__name__} cannot be stored in a checkpoint (plain data and functions only)"
    )


def config_from_data(default: Any, data: Any, task: str = "the task") -> Any:
    """The config ``data`` describes, built on ``default`` (the task's registered default config, not modified).

    Fields the data lacks keep their default; a field the default config does not have, a value of the wrong kind or
    a function the task does not use raises ``ValueError`` naming the field.
    """
    allowed = _functions_of(default)
    modules = {func.__module__ for func in allowed.values()}
    return _build(default, data, "env", _Resolver(allowed, modules, task))


# --- internals --------------------------------------------------------------------------------------------------------


def _init_fields(obj: Any) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(obj) if f.init]


def _functions_of(value: Any, found: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every function a config tree names, by ``module:qualname``."""
    found = {} if found is None else found
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in _init_fields(value):
            _functions_of(getattr(value, f.name), found)
    elif isinstance(value, dict):
        for v in value.values():
            _functions_of(v, found)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _functions_of(v, found)
    elif inspect.isfunction(value) or inspect.isbuiltin(value):
        found[function_name(value)] = value
    return found


@dataclasses.dataclass
class _Resolver:
    """Turns a stored function name back into a function, from the whitelist only."""

    allowed: dict[str, Any]
    """The functions the task's default config names."""
    modules: set[str]
    """Modules of those functions: their other module-level functions are allowed too (e.g. more reward terms)."""
    task: str

    def __call__(self, name: Any, where: str) -> Any:
        if not isinstance(name, str):
            raise ValueError(f"{where}: a stored function must be a 'module:qualname' string, got {name!r}")
        if name in self.allowed:
            return self.allowed[name]
        module_name, _, qualname = name.partition(":")
        module = sys.modules.get(module_name) if module_name in self.modules else None
        func = getattr(module, qualname, None) if module is not None and qualname.isidentifier() else None
        if inspect.isfunction(func) and func.__module__ == module_name:
            return func
        raise ValueError(
            f"{where}: function '{name}' is not one {self.task} uses; allowed: the functions its default config names "
            f"({', '.join(sorted(self.allowed)) or 'none'}) and the other functions of their modules "
            f"({', '.join(sorted(self.modules)) or 'none'}). Checkpoints never import code."
        )


def _build(default: Any, data: Any, where: str, resolve: _Resolver) -> Any:
    """The value ``data`` describes at ``where``, with ``default`` (the default config's value there) as template."""
    if dataclasses.is_dataclass(default) and not isinstance(default, type):
        return _build_dataclass(type(default), default, data, where, resolve)
    if inspect.isfunction(default) or inspect.isbuiltin(default) or _is_function(data):
        if not _is_function(data):
            raise ValueError(
                f"{where}: expected a stored function {{'{FUNCTION_KEY}': 'module:qualname'}}, got {data!r}"
            )
        return resolve(data[FUNCTION_KEY], where)
    if isinstance(default, dict):
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a dict, got {type(data).__name__}")
        prototype = next(iter(default.values()), None)
        out = {}
        for key, value in data.items():
            if key in default:
                out[key] = _build(default[key], value, f"{where}[{key!r}]", resolve)
            elif dataclasses.is_dataclass(prototype) and not isinstance(prototype, type):
                # A term the default config does not have: built from its stored fields alone.
                out[key] = _build_dataclass(type(prototype), None, value, f"{where}[{key!r}]", resolve)
            else:
                out[key] = _build(prototype, value, f"{where}[{key!r}]", resolve)
        return out
    if isinstance(default, (tuple, list)) or (default is None and isinstance(data, list)):
        if not isinstance(data, list):
            raise ValueError(f"{where}: expected a list, got {data!r}")
        items = list(default) if isinstance(default, (tuple, list)) else []
        built = [_build(items[i] if i < len(items) else (items[0] if items else None), v, f"{where}[{i}]", resolve)
                 for i, v in enumerate(data)]  # fmt: skip
        return built if isinstance(default, list) else tuple(built)
    return _scalar(default, data, where)


def _build_dataclass(cls: type, default: Any, data: Any, where: str, resolve: _Resolver) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected the fields of {cls.__name__}, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: {cls.__name__} has no field {unknown[0]!r}; fields: {', '.join(sorted(names))}")
    hints = _hints(cls)
    kwargs = {}
    for name in names:
        if name in data:
            template = getattr(default, name) if default is not None else _template(hints.get(name))
            kwargs[name] = _build(template, data[name], f"{where}.{name}", resolve)
        elif default is None:
            raise ValueError(f"{where}: field {name!r} is missing (this entry is not in the task's default config)")
        else:
            kwargs[name] = getattr(default, name)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from err


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 -- unresolvable annotations: build without type guidance
        return {}


def _template(hint: Any) -> Any:
    """A stand-in default of a type hint, enough to guide :func:`_build` (tuples stay tuples, floats floats)."""
    origin = typing.get_origin(hint) or hint
    if origin is tuple:
        return ()
    if origin is dict:
        return {}
    if origin in (float, int, bool, str):
        return origin()
    return None


def _is_function(data: Any) -> bool:
    return isinstance(data, dict) and set(data) == {FUNCTION_KEY}


def _scalar(default: Any, data: Any, where: str) -> Any:
    """A stored scalar, checked against the default's type (an int where a float is expected is converted)."""
    if data is None or default is None:
        if isinstance(data, (dict, list)):
            raise ValueError(f"{where}: expected a plain value, got {data!r}")
        return data
    if isinstance(default, bool) or isinstance(data, bool):
        if isinstance(default, bool) and isinstance(data, bool):
            return data
    elif isinstance(default, (int, float)) and isinstance(data, (int, float)):
        return float(data) if isinstance(default, float) else data  # an int default may hold a float value
    elif isinstance(default, str) and isinstance(data, str):
        return data
    raise ValueError(f"{where}: expected a {type(default).__name__} like the default {default!r}, got {data!r}")


def env_config_for(spec: Any, data: dict[str, Any] | None) -> Any:
    """The env config of task ``spec`` that ``data`` (stored by :func:`config_to_data`) describes; the task's default
    config when there is no data (checkpoints written before env configs were stored)."""
    if data is None:
        return spec.env_cfg()
    return config_from_data(spec.env_cfg(), data, f"task '{spec.name}'")


def checkpoint_env_config(spec: Any, state: dict[str, Any]) -> Any:
    """The env config a checkpoint was trained with, if it was trained on ``spec``'s task; else the task's default."""
    infos = state.get("infos") or {}
    return env_config_for(spec, infos.get("env_cfg") if infos.get("task") == spec.name else None)
