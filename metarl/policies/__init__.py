"""Policies with explicit parameter sets, and the helpers that handle those sets."""
