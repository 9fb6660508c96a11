"""Deployment: export with metadata and parity checks, torch-free runtime."""
