"""Vigil scoring engine: reads chat conversations and rates how likely each is grooming."""

__version__ = "0.1.0"
