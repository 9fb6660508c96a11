"""Batched environments: pure-torch tasks, MuJoCo simulation layer, robots, wrappers."""
