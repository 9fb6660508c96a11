"""rsl-rl-lib 5.5.1's public API, derived from rsl-rl-lib itself (``tests/fixtures/rsl_rl_lib/api.json``, regenerated
by ``tests/fixtures/rsl_rl_lib/generate.py`` in its own venv), checked against ours.

Every public module path, name, class member and instance attribute that frameworks can import, call or subclass
must exist here with a compatible signature. What deliberately differs, or is not there yet, is listed in
``api_exceptions.json`` with the reason; a listed entry that now matches fails the test too, so the list cannot go
stale.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import textwrap
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parents[1] / "fixtures" / "rsl_rl_lib"

_POSITIONAL = ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")


def _signature_problem(ours: Any, peer: list[list[Any]] | None) -> str | None:
    """Why a call written for rsl-rl-lib's signature ``peer`` would fail on ``ours`` (None: it would not).

    Every peer parameter must be accepted under its name (and at its position, for positional ones) or through
    ``*args``/``**kwargs``; ours may not require a parameter the peer lacks.
    """
    if peer is None:
        return None
    try:
        params = list(inspect.signature(ours).parameters.values())
    except (TypeError, ValueError):
        return "no signature"
    if params and params[0].name in ("self", "cls") and peer and peer[0][0] in ("self", "cls"):
        params, peer = params[1:], peer[1:]
    elif params and params[0].name in ("self", "cls"):
        params = params[1:]
    elif peer and peer[0][0] in ("self", "cls"):
        peer = peer[1:]
    by_name = {p.name: p for p in params}
    var_pos = any(p.kind.name == "VAR_POSITIONAL" for p in params)
    var_kw = any(p.kind.name == "VAR_KEYWORD" for p in params)
    ours_positional = [p.name for p in params if p.kind.name in _POSITIONAL]
    for index, (name, kind, _default) in enumerate(peer):
        if kind in ("VAR_POSITIONAL", "VAR_KEYWORD"):
            continue
        if name not in by_name and not var_kw:
            return f"parameter {name!r} missing"
        if kind in _POSITIONAL and not (index < len(ours_positional) and ours_positional[index] == name or var_pos):
            return f"parameter {name!r} not at position {index}"
    peer_names = {name for name, _, _ in peer}
    for p in params:
        required = p.default is inspect.Parameter.empty and p.kind.name not in ("VAR_POSITIONAL", "VAR_KEYWORD")
        if required and p.name not in peer_names:
            return f"requires parameter {p.name!r} that rsl-rl-lib callers do not pass"
    return None


def _assigned_attributes(cls: type) -> set[str]:
    """Names assigned as ``self.<name>`` in the methods of ``cls`` and its bases, plus class-level names."""
    names: set[str] = set()
    for klass in inspect.getmro(cls):
        if klass is object:
            continue
        names.update(vars(klass))
        names.update(getattr(klass, "__annotations__", {}))
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        for node in ast.walk(tree):
            is_self = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
            if is_self and isinstance(node.ctx, ast.Store):  # pyright: ignore[reportAttributeAccessIssue]
                names.add(node.attr)  # pyright: ignore[reportAttributeAccessIssue]
    return names


def api_problems(api: dict[str, Any]) -> dict[str, str]:
    """``path -> what is wrong`` for every public item of rsl-rl-lib's API that ours lacks or takes differently."""
    problems: dict[str, str] = {}
    for module_name, entries in api["modules"].items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            problems[module_name] = f"module missing ({err})"
            continue
        for name, entry in entries.items():
            path = f"{module_name}.{name}"
            if not hasattr(module, name):
                problems[path] = "missing"
                continue
            obj = getattr(module, name)
            if entry["kind"] == "function":
                if (why := _signature_problem(obj, entry.get("signature"))) is not None:
                    problems[path] = why
                continue
            if entry["kind"] != "class":
                continue
            if not inspect.isclass(obj):
                problems[path] = f"not a class ({type(obj).__name__})"
                continue
            for member, spec in entry["members"].items():
                member_path = f"{path}.{member}"
                raw = inspect.getattr_static(obj, member, None)
                if raw is None:
                    problems[member_path] = "missing"
                elif spec["kind"] == "property" and not isinstance(raw, property):
                    problems[member_path] = f"a property in rsl-rl-lib, a {type(raw).__name__} here"
                elif spec["kind"] in ("method", "staticmethod", "classmethod"):
                    if isinstance(raw, property) or not callable(getattr(obj, member)):
                        problems[member_path] = f"a {spec['kind']} in rsl-rl-lib, not callable here"
                    elif (why := _signature_problem(getattr(obj, member), spec.get("signature"))) is not None:
                        problems[member_path] = why
            if entry.get("instance_attributes"):
                assigned = _assigned_attributes(obj)
                for attr in entry["instance_attributes"]:
                    if attr not in assigned:
                        problems[f"{path}.{attr}"] = "instance attribute missing"
    return problems


def _load() -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    api = json.loads((FIXTURES / "api.json").read_text())
    exceptions = json.loads((FIXTURES / "api_exceptions.json").read_text())
    return api, exceptions


def _count(api: dict[str, Any]) -> int:
    total = 0
    for entries in api["modules"].values():
        total += 1
        for entry in entries.values():
            total += 1 + len(entry.get("members", {})) + len(entry.get("instance_attributes", []))
    return total


def test_every_rsl_rl_lib_public_name_exists_or_is_a_listed_exception() -> None:
    api, exceptions = _load()
    problems = api_problems(api)
    listed = {**exceptions["differs"], **exceptions["missing"]}
    unlisted = {path: why for path, why in problems.items() if path not in listed}
    assert not unlisted, (
        f"{len(unlisted)} rsl-rl-lib API items missing or incompatible: {json.dumps(unlisted, indent=1)}"
    )
    stale = sorted(path for path in listed if path not in problems)
    assert not stale, f"listed as exceptions but now compatible (remove them from api_exceptions.json): {stale}"
    for path, why in listed.items():
        assert why.strip(), f"exception {path} gives no reason"
    total = _count(api)
    print(f"rsl-rl-lib {api['rsl-rl-lib']}: {total - len(problems)} of {total} public items compatible")


def test_the_api_check_catches_a_missing_name_and_an_incompatible_signature() -> None:
    """The checker itself: a made-up entry and a signature ours cannot take are reported."""
    api = {
        "modules": {
            "rsl_rl.env": {"NoSuchThing": {"kind": "function", "signature": []}},
            "rsl_rl.env.vec_env": {
                "VecEnv": {
                    "kind": "class",
                    "bases": [],
                    "members": {
                        "step": {
                            "kind": "method",
                            "signature": [
                                ["self", "POSITIONAL_OR_KEYWORD", None],
                                ["acts", "POSITIONAL_OR_KEYWORD", None],
                            ],
                        }
                    },
                    "instance_attributes": ["not_an_attribute"],
                }
            },
            "rsl_rl.no_such_module": {},
        }
    }
    problems = api_problems(api)
    assert set(problems) == {
        "rsl_rl.env.NoSuchThing",
        "rsl_rl.env.vec_env.VecEnv.step",
        "rsl_rl.env.vec_env.VecEnv.not_an_attribute",
        "rsl_rl.no_such_module",
    }, problems
