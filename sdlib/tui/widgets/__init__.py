"""Reusable widgets of the TUI (no IO of their own except through workers)."""
