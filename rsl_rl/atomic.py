"""Crash-safe file writes (a file is either the old one or the complete new one, never a truncated mix), and loads
that never run code."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch


def atomic_write(path: str | os.PathLike[str], write: Any) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    A crash at any point leaves either the previous file or the new one, never a truncated mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the permissions open() would
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def load_weights_only(path: str | os.PathLike[str], what: str, map_location: str | torch.device | None = None) -> Any:
    """``torch.load(path, weights_only=True)``: a crafted file can fail to load but cannot run code. A missing, damaged
    or unsafe file gets an error that names the file and ``what`` it should have been."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" in str(err).lower():  # a refused import: the file holds more than tensors and containers
            raise ValueError(
                f"{path} is not a loadable {what}: it holds objects other than tensors and plain containers, which "
                f"are refused because unpickling them could run code ({err})"
            ) from err
        raise ValueError(f"{path} is not a loadable {what}: not a valid {what} (damaged or not torch.save's)") from err
    except (RuntimeError, EOFError) as err:
        raise ValueError(
            f"{path} is not a loadable {what}: not a valid {what} (damaged or not torch.save's): {err}"
        ) from err
