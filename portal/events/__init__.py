"""The audit trail: append-only events with an actor, a ``subject:action`` tag and a payload."""
