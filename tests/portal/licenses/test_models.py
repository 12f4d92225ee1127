"""The license state machine is a table; every other move is refused."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from portal.errors import LicenseStateError
from portal.licenses.models import ALLOWED_TRANSITIONS, License, LicenseStatus

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _license(status: LicenseStatus) -> License:
    return License(status=status, status_changed_at=datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (current, target)
        for current, target in itertools.product(LicenseStatus, LicenseStatus)
        if target in ALLOWED_TRANSITIONS[current]
    ],
)
def test_allowed_transition_changes_status(current: LicenseStatus, target: LicenseStatus) -> None:
    license_ = _license(current)
    license_.transition(target, at=NOW)
    assert (license_.status, license_.status_changed_at) == (target, NOW)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (current, target)
        for current, target in itertools.product(LicenseStatus, LicenseStatus)
        if target not in ALLOWED_TRANSITIONS[current]
    ],
)
def test_disallowed_transition_raises_and_keeps_status(
    current: LicenseStatus, target: LicenseStatus
) -> None:
    license_ = _license(current)
    with pytest.raises(LicenseStateError, match=f"is {current.value}"):
        license_.transition(target, at=NOW)
    assert license_.status is current


def test_revoked_is_final_and_every_status_has_a_row() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(LicenseStatus)
    assert ALLOWED_TRANSITIONS[LicenseStatus.REVOKED] == frozenset()


def test_license_state_error_is_a_license_problem() -> None:
    assert (LicenseStateError.exit_code, LicenseStateError.status_code) == (3, 409)
