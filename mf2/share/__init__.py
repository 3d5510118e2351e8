"""Sharing a dataset: verify it, export it without pixels, rebuild it, split it, take videos down."""
