"""The ``admins`` and ``admin_sessions`` tables.

An administrator signs in with an e-mail address, a password (argon2id hash)
and a TOTP code. ``password_hash`` is empty until the administrator has set
a password and enrolled the TOTP secret (an invitation not yet accepted).
A session cookie holds a random token; the table keeps only its SHA-256.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db_base import Base, utc_now


class Admin(Base):
    __tablename__ = "admins"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True, comment="Stored lower-case.")
    password_hash: Mapped[str | None] = mapped_column(
        String(255), comment="argon2id hash; empty until an invitation is accepted."
    )
    totp_secret: Mapped[str] = mapped_column(String(64), comment="Base32 TOTP shared secret.")
    totp_last_step: Mapped[int | None] = mapped_column(
        BigInteger, comment="Time step of the last accepted TOTP code: a code is used once."
    )
    enrolled_at: Mapped[datetime | None] = mapped_column(
        comment="When the password and TOTP were set; null for a pending invitation."
    )
    invited_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("admins.id", ondelete="SET NULL")
    )
    invited_by: Mapped[Admin | None] = relationship(remote_side="Admin.id")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    failed_login_count: Mapped[int] = mapped_column(
        default=0, comment="Failed logins in the current window (see login_failure_window)."
    )
    last_failed_login_at: Mapped[datetime | None] = mapped_column()
    locked_until: Mapped[datetime | None] = mapped_column(
        comment="Logins are refused until then, whatever the credentials."
    )
    last_login_at: Mapped[datetime | None] = mapped_column()

    @property
    def is_enrolled(self) -> bool:
        return self.password_hash is not None and self.enrolled_at is not None

    def __repr__(self) -> str:
        return f"<Admin {self.email}>"


class AdminSession(Base):
    __tablename__ = "admin_sessions"

    id: Mapped[str] = mapped_column(
        String(64), primary_key=True, comment="Hex SHA-256 of the session cookie's token."
    )
    admin_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("admins.id", ondelete="CASCADE"), index=True
    )
    admin: Mapped[Admin] = relationship(lazy="joined")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(index=True)

    def __repr__(self) -> str:
        return f"<AdminSession of {self.admin_id} until {self.expires_at}>"
