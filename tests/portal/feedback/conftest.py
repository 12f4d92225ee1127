"""An engine of ``Example Chat Ltd`` activated on the portal under test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.portal.usage.support import Reporter, activate

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi.testclient import TestClient

    from tests.portal.support import Licensed


@pytest.fixture
def reporter(client: TestClient, make_licensed: Callable[..., Licensed]) -> Reporter:
    return activate(client, make_licensed())
