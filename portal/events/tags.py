"""Event tags, shaped ``subject:action`` (as warehouse ``warehouse/events/tags.py``).

A tag names what happened; the event's payload says to what and why. Tags are
stored as text, so renaming a member here must keep its value.
"""

from __future__ import annotations

from enum import StrEnum


class EventTag(StrEnum):
    ADMIN_CREATED = "admin:created"
    ADMIN_INVITED = "admin:invited"
    ADMIN_ENROLLED = "admin:enrolled"
    ADMIN_LOGGED_IN = "admin:logged_in"
    ADMIN_LOGGED_OUT = "admin:logged_out"
    ADMIN_LOGIN_FAILED = "admin:login_failed"
    ADMIN_LOCKED_OUT = "admin:locked_out"

    APPLICATION_SUBMITTED = "application:submitted"
    APPLICATION_CHECKLIST_UPDATED = "application:checklist_updated"
    APPLICATION_NOTE_ADDED = "application:note_added"
    APPLICATION_INFORMATION_REQUESTED = "application:information_requested"
    APPLICATION_REPLIED = "application:replied"
    APPLICATION_DEFERRED = "application:deferred"
    APPLICATION_DECLINED = "application:declined"
    APPLICATION_APPROVED = "application:approved"

    BUNDLE_EXPORTED = "bundle:exported"
    BUNDLE_PUBLISHED = "bundle:published"
    BUNDLE_PROMOTED = "bundle:promoted"

    ENGINE_ACTIVATED = "engine:activated"
    ENGINE_DEACTIVATED = "engine:deactivated"
    ENGINE_REFUSED = "engine:refused"

    KEY_CREATED = "key:created"
    KEY_ROTATED = "key:rotated"

    LEASE_RENEWED = "lease:renewed"

    LICENSE_DOWNLOAD_LINK_SENT = "license:download_link_sent"
    LICENSE_DOWNLOADED = "license:downloaded"
    LICENSE_ISSUED = "license:issued"
    LICENSE_REINSTATED = "license:reinstated"
    LICENSE_RENEWED = "license:renewed"
    LICENSE_REVOKED = "license:revoked"
    LICENSE_SUSPENDED = "license:suspended"

    MODEL_RETRAINED = "model:retrained"

    ORGANISATION_CREATED = "organisation:created"
    ORGANISATION_DASHBOARD_LINK_SENT = "organisation:dashboard_link_sent"
    ORGANISATION_DASHBOARD_LINKS_WITHDRAWN = "organisation:dashboard_links_withdrawn"
    ORGANISATION_TEXT_SHARING_DISABLED = "organisation:text_sharing_disabled"
    ORGANISATION_TEXT_SHARING_ENABLED = "organisation:text_sharing_enabled"

    REPOSITORY_CREATED = "repository:created"
    REPOSITORY_LICENSE_KEYS_PUBLISHED = "repository:license_keys_published"

    @property
    def subject(self) -> str:
        return self.value.partition(":")[0]

    @property
    def action(self) -> str:
        return self.value.partition(":")[2]
