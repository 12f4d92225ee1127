"""Event tags, shaped ``subject:action`` (as warehouse ``warehouse/events/tags.py``).

A tag names what happened; the event's payload says to what and why. Tags are
stored as text, so renaming a member here must keep its value.
"""

from __future__ import annotations

from enum import StrEnum


class EventTag(StrEnum):
    ADMIN_CREATED = "admin:created"

    BUNDLE_EXPORTED = "bundle:exported"
    BUNDLE_PUBLISHED = "bundle:published"

    KEY_CREATED = "key:created"
    KEY_ROTATED = "key:rotated"

    LICENSE_ISSUED = "license:issued"
    LICENSE_REINSTATED = "license:reinstated"
    LICENSE_RENEWED = "license:renewed"
    LICENSE_REVOKED = "license:revoked"
    LICENSE_SUSPENDED = "license:suspended"

    ORGANISATION_CREATED = "organisation:created"

    REPOSITORY_CREATED = "repository:created"
    REPOSITORY_LICENSE_KEYS_PUBLISHED = "repository:license_keys_published"

    @property
    def subject(self) -> str:
        return self.value.partition(":")[0]

    @property
    def action(self) -> str:
        return self.value.partition(":")[2]
