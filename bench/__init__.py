"""Evaluation scripts; each prints JSON (importable so tests can check the scorer)."""
