"""Operator control over Redis: signed commands with roles (commands.py, auth.py)."""
