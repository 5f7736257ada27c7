"""Strategies written as a user writes them: plain Backtrader classes (run from the repo root)."""
