"""Command-line interface (`rsl-rl`)."""
