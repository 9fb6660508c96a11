"""Peers that must not share our environment (rsl-rl-lib also imports as ``rsl_rl``) live in venvs of their own."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import torch


def peer_python(path: Path, requirement: str, extra: tuple[str, ...] = ()) -> Path:
    """Interpreter of the venv at ``path`` holding ``requirement`` (``name==version``) and our torch version.

    Created on first use; reused while the installed version matches.
    """
    python = path / "bin" / "python"
    name, version = requirement.split("==")
    check = [str(python), "-c", f"import importlib.metadata as m; print(m.version({name!r}))"]
    if python.exists() and subprocess.run(check, capture_output=True, text=True).stdout.strip() == version:
        return python
    print(f"creating {path} with {requirement} (once)...", file=sys.stderr)
    venv.create(path, with_pip=True, clear=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, f"torch=={torch.__version__.split('+')[0]}"], check=True)
    subprocess.run([*pip, requirement, *extra], check=True)
    return python
