"""Licenses: issuing signed license tokens and their lifecycle (active, suspended, revoked)."""
