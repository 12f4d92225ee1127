"""The engine's state directory (``$VIGIL_ENGINE_HOME``, or ``--home``).

Layout::

    config.json               settings: threshold, portal_url, license_grace_days,
                              channel, update_interval_hours, portal_timeout_seconds,
                              review_retention_days, moderator
    local.sqlite3             review queue, usage counts and report outbox (mode 0600;
                              ``scoring_engine.localdb``)
    clock.json                the clock high-water mark (latest time this engine observed)
    engine.json               this engine's id (a UUID made once per home), for the portal
    activation.json           the engine's activation at the portal: id, license, status,
                              lease expiry, when it was activated and last renewed
    updates.json              online updates: last successful check, last install, the
                              newest version the portal offered, the last failure
    trust/
        root.json             the TUF root this engine trusts: the one given to ``init``,
                              replaced by newer roots only after they verified through
                              the signed root chain
        license.jwt           the license token
        license-keys.json     the signed ``licensing/keys.json`` target, as TUF verified it
        revocations.json      the signed ``licensing/revocations.json`` target, likewise
        lease.jwt             the portal's lease for this engine's activation (signed JWS)
        portal-denial.json    the portal refused the license (revoked or suspended): no
                              scoring with that license until the portal accepts it again
                              or another license is installed
        tuf/                  python-tuf's metadata cache (root history, timestamp, snapshot,
                              targets): kept between installs so metadata cannot roll back
    bundles/
        <version>/            an installed bundle: manifest.json, model.skops, MODEL_CARD.md
        current.json          the installed bundle and what was verified when it was
                              installed; replacing this file is the atomic switch
        previous.json         the same record of the bundle installed before it
        history.json          every install; the highest version in it is the rollback guard
    tmp/                      scratch space for installs (same file system: moves are renames)
    .lock                     serialises ``init``, ``install`` and ``update``

Every state file is written atomically (temporary file, flush, rename), so a crash leaves
the old or the new file, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from platformdirs import user_data_dir

from scoring_engine.errors import BadInputError

ENV_HOME: Final = "VIGIL_ENGINE_HOME"

# How often ``vigil-engine update --if-due`` checks the portal (config update_interval_hours).
DEFAULT_UPDATE_INTERVAL: Final = timedelta(hours=24)
_MAX_PORTAL_TIMEOUT: Final = 600.0

# How long the text of a reviewed conversation stays in the local queue (docs/feedback.md).
DEFAULT_REVIEW_RETENTION: Final = timedelta(days=90)
_MAX_REVIEW_RETENTION_DAYS: Final = 36500

# The grace period after a license's ``exp`` (docs/licensing.md). An organisation may
# shorten it in config.json, never lengthen it: the config is local and writable, so a
# longer value would let anyone keep scoring on a license that ended long ago.
MAX_GRACE: Final = timedelta(days=14)

try:  # POSIX; on other systems installs are not serialised against each other.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


def default_home() -> Path:
    return Path(os.environ.get(ENV_HOME) or user_data_dir("vigil-engine", appauthor=False))


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp_path = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        tmp_path.chmod(mode)
        tmp_path.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def json_bytes(document: Any) -> bytes:
    """A state file's bytes: stable, readable JSON."""
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


@dataclass(frozen=True)
class EngineHome:
    path: Path

    @classmethod
    def resolve(cls, path: Path | None) -> EngineHome:
        return cls((path or default_home()).expanduser())

    #### Paths ####

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def clock_file(self) -> Path:
        return self.path / "clock.json"

    @property
    def trust_dir(self) -> Path:
        return self.path / "trust"

    @property
    def trust_root_file(self) -> Path:
        return self.trust_dir / "root.json"

    @property
    def license_file(self) -> Path:
        return self.trust_dir / "license.jwt"

    @property
    def license_keys_file(self) -> Path:
        return self.trust_dir / "license-keys.json"

    @property
    def revocations_file(self) -> Path:
        return self.trust_dir / "revocations.json"

    @property
    def lease_file(self) -> Path:
        return self.trust_dir / "lease.jwt"

    @property
    def denial_file(self) -> Path:
        return self.trust_dir / "portal-denial.json"

    @property
    def engine_file(self) -> Path:
        return self.path / "engine.json"

    @property
    def activation_file(self) -> Path:
        return self.path / "activation.json"

    @property
    def updates_file(self) -> Path:
        return self.path / "updates.json"

    @property
    def tuf_cache(self) -> Path:
        return self.trust_dir / "tuf"

    @property
    def bundles(self) -> Path:
        return self.path / "bundles"

    @property
    def current_record_file(self) -> Path:
        return self.bundles / "current.json"

    @property
    def previous_record_file(self) -> Path:
        return self.bundles / "previous.json"

    @property
    def history_file(self) -> Path:
        return self.bundles / "history.json"

    @property
    def scratch(self) -> Path:
        return self.path / "tmp"

    def is_initialised(self) -> bool:
        """Whether ``init`` stored a trust root and a license here."""
        return self.trust_root_file.is_file() and self.license_file.is_file()

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the home's exclusive lock (``init``, ``install`` and ``update`` write files)."""
        return self._flock(".lock")

    def report_lock(self) -> contextlib.AbstractContextManager[None]:
        """Held by ``report`` for its whole run and by ``outbox requeue|discard``: a batch
        is never put back or dropped while a run may be sending it."""
        return self._flock(".report.lock")

    @contextlib.contextmanager
    def _flock(self, name: str) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / name).open("a") as handle:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    #### Settings ####

    def config(self) -> dict[str, Any]:
        try:
            data = json.loads(self.config_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BadInputError(f"{self.config_file}: unreadable engine config: {error}") from error
        if not isinstance(data, dict):
            raise BadInputError(f"{self.config_file}: engine config is not a JSON object")
        return data

    def update_config(self, **changes: Any) -> None:
        """Set keys of config.json (other keys are kept)."""
        atomic_write(self.config_file, json_bytes({**self.config(), **changes}))

    def configured_threshold(self) -> float | None:
        value = self.config().get("threshold")
        if value is None:
            return None
        if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
            raise BadInputError(f"{self.config_file}: threshold must be a number in [0, 1]")
        return float(value)

    def portal_url(self) -> str | None:
        value = self.config().get("portal_url")
        if value is not None and not isinstance(value, str):
            raise BadInputError(f"{self.config_file}: portal_url must be a string")
        return value

    def license_grace(self) -> timedelta:
        """The grace period after ``exp``: ``license_grace_days`` in config, at most 14 days."""
        value = self.config().get("license_grace_days")
        if value is None:
            return MAX_GRACE
        limit = MAX_GRACE.days
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= limit:
            raise BadInputError(
                f"{self.config_file}: license_grace_days must be a number from 0 to {limit}"
            )
        return timedelta(days=value)

    def configured_channel(self) -> str | None:
        """The channel ``update`` follows, if the organisation chose one (``channel``)."""
        value = self.config().get("channel")
        if value is not None and (not isinstance(value, str) or not value):
            raise BadInputError(f"{self.config_file}: channel must be a channel name")
        return value

    def update_interval(self) -> timedelta:
        """How old the last check must be for ``update --if-due`` to check again."""
        value = self.config().get("update_interval_hours")
        if value is None:
            return DEFAULT_UPDATE_INTERVAL
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 8760:
            raise BadInputError(
                f"{self.config_file}: update_interval_hours must be a number from 0 to 8760"
            )
        return timedelta(hours=value)

    def portal_timeout(self) -> float | None:
        """Connect and read timeout towards the portal, in seconds (None: the default)."""
        value = self.config().get("portal_timeout_seconds")
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 < value <= _MAX_PORTAL_TIMEOUT
        ):
            raise BadInputError(
                f"{self.config_file}: portal_timeout_seconds must be a number of seconds "
                f"above 0 and at most {_MAX_PORTAL_TIMEOUT:.0f}"
            )
        return float(value)

    def review_retention(self) -> timedelta:
        """How long reviewed conversations keep their text (``review_retention_days``)."""
        value = self.config().get("review_retention_days")
        if value is None:
            return DEFAULT_REVIEW_RETENTION
        limit = _MAX_REVIEW_RETENTION_DAYS
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= limit:
            raise BadInputError(
                f"{self.config_file}: review_retention_days must be a number from 0 to {limit}"
            )
        return timedelta(days=value)

    def configured_moderator(self) -> str | None:
        """The name ``review verdict`` records when no ``--moderator`` is given."""
        value = self.config().get("moderator")
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise BadInputError(f"{self.config_file}: moderator must be a non-empty name")
        return None if value is None else value.strip()
