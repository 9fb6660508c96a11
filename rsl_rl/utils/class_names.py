"""``class_name`` values of rsl-rl-lib 5.x configs: a bare name (``"MLPModel"``) or a path
(``"rsl_rl.models:MLPModel"``, ``"rsl_rl.models.MLPModel"``). A path is resolved, so a class from another package is
reported instead of being silently replaced by ours of the same name."""

from __future__ import annotations

from collections.abc import Iterable


def short_class_name(class_name: str, allowed: Iterable[str], field: str) -> str:
    """The bare name ``class_name`` selects among ``allowed`` (names of this library's classes).

    A path must resolve to this library's class of that name; an unknown name, a path that does not import, or a
    class from elsewhere is a ``ValueError`` naming ``field``, the value and the allowed names.
    """
    allowed = list(allowed)
    short = class_name.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    if short not in allowed:
        raise ValueError(f"{field}={class_name!r} is not supported; allowed: {allowed}")
    if short == class_name:
        return short
    from rsl_rl.utils.utils import resolve_callable  # lazy: config modules import this one

    try:
        obj = resolve_callable(class_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(
            f"{field}={class_name!r} cannot be resolved ({err}); this library builds its own components: give one "
            f"of {allowed} or its path in rsl_rl"
        ) from err
    module = getattr(obj, "__module__", "") or ""
    if not (module == "rsl_rl" or module.startswith("rsl_rl.")) or getattr(obj, "__name__", None) != short:
        raise ValueError(
            f"{field}={class_name!r} resolves to {module}.{getattr(obj, '__qualname__', obj)!s}, a class from outside "
            f"this library, which it cannot train with (custom classes are not supported yet); allowed: {allowed}"
        )
    return short
