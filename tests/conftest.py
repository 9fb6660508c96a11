"""Shared test settings: CPU, quiet offline W&B, headless matplotlib."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("MPLBACKEND", "Agg")

# Shared test-support modules (tests/support/*.py) import by plain name.
sys.path.insert(0, str(Path(__file__).parent / "support"))
