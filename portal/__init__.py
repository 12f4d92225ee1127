"""Vigil portal: vetting applications, licensing organisations, publishing signed models."""
