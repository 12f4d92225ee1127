"""Every table of the portal, imported in one place so ``Base.metadata`` is the
whole schema (for Alembic's ``env.py`` and the models-versus-migrations test).
A new domain package adds its models here.
"""

from __future__ import annotations

from portal.admin.models import Admin, AdminSession
from portal.applications.models import (
    Application,
    ApplicationNote,
    ChecklistEntry,
    InformationRequest,
)
from portal.bundles.models import Bundle
from portal.db_base import Base
from portal.engines.models import Activation
from portal.events.models import Event
from portal.feedback.models import Feedback
from portal.licenses.models import License
from portal.magic_links.models import MagicLink
from portal.organisations.models import Organisation
from portal.usage.models import ReportBatch, UsageDay, UsageRollup

metadata = Base.metadata

__all__ = [
    "Activation",
    "Admin",
    "AdminSession",
    "Application",
    "ApplicationNote",
    "Base",
    "Bundle",
    "ChecklistEntry",
    "Event",
    "Feedback",
    "InformationRequest",
    "License",
    "MagicLink",
    "Organisation",
    "ReportBatch",
    "UsageDay",
    "UsageRollup",
    "metadata",
]
