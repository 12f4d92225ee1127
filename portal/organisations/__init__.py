"""Organisations: the companies the portal licenses."""
