"""The metadata schema of exported policies, shared by the exporter and the torch-free runtime (no torch here)."""

from __future__ import annotations

import json
from typing import Any

SCHEMA_VERSION = 1
METADATA_KEY = "rsl_rl_forge.metadata"
REQUIRED = ("schema", "inputs", "outputs", "observation", "action")


def parse_metadata(text: str, source: str = "policy") -> dict[str, Any]:
    """Decode and check the metadata JSON; errors name the file and the missing or unsupported entry."""
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: the embedded metadata is not valid JSON ({err})") from err
    missing = [key for key in REQUIRED if key not in meta]
    if missing:
        raise ValueError(f"{source}: metadata lacks {missing}")
    if meta["schema"] > SCHEMA_VERSION:
        raise ValueError(f"{source}: metadata schema {meta['schema']} is newer than this runtime ({SCHEMA_VERSION})")
    action = meta["action"]
    for key in ("default", "low", "high"):
        if len(action.get(key, [])) != action["dim"]:
            raise ValueError(f"{source}: action.{key} must have {action['dim']} entries")
    return meta
