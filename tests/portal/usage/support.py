"""An activated engine that reports to the portal under test, and batch factories."""

from __future__ import annotations

import gzip
import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from scoring_engine.model.vectors import FEATURE_DIM, FeatureVector

if TYPE_CHECKING:
    import httpx
    from fastapi.testclient import TestClient

    from tests.portal.support import Licensed

USAGE = "/api/v1/usage"
FEEDBACK = "/api/v1/feedback"
POLICY = "/api/v1/feedback/policy"
DAY = "2026-12-01"
BUNDLE = "reference-2026.11.0"


@dataclass
class Reporter:
    """An engine holding a seat of ``licensed``, with its current lease."""

    client: TestClient
    licensed: Licensed
    engine_id: str
    lease: str

    @property
    def headers(self) -> dict[str, str]:
        return {**self.licensed.headers, "X-Vigil-Lease": self.lease}

    def post(
        self,
        path: str,
        body: dict[str, Any] | bytes,
        *,
        compress: bool = False,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {**self.headers, "Content-Type": "application/json", **(headers or {})}
        if compress:
            data = gzip.compress(data)
            sent["Content-Encoding"] = "gzip"
        return self.client.post(path, content=data, headers=sent)


def activate(client: TestClient, licensed: Licensed, engine_id: str | None = None) -> Reporter:
    engine_id = engine_id or str(uuid.uuid4())
    response = client.post(
        "/api/v1/activations",
        json={"engine_id": engine_id, "engine_version": "0.1.0", "hostname": "scorer-1"},
        headers=licensed.headers,
    )
    assert response.status_code in {200, 201}, response.text
    return Reporter(client, licensed, engine_id, response.json()["lease"])


def usage_record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "day": DAY,
        "bundle": BUNDLE,
        "scored": 120,
        "flagged": 3,
        "reviewed": 2,
        "verdicts": {"not_grooming": 1, "grooming": 1, "imminent_threat": 0},
        "score_histogram": [100, 9, 5, 3] + [0] * 14 + [1, 2],
    }
    record.update(overrides)
    return record


def batch(engine_id: str, records: list[Any], batch_id: str | None = None) -> dict[str, Any]:
    return {"batch_id": batch_id or str(uuid.uuid4()), "engine_id": engine_id, "records": records}


def vector(nnz: int = 40, seed: int = 0) -> FeatureVector:
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(FEATURE_DIM, nnz, replace=False)).astype("<i4")
    return FeatureVector(indices=indices, values=rng.random(nnz).astype("<f4"))


def feedback_record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "feedback_id": str(uuid.uuid4()),
        "bundle": BUNDLE,
        "score": 0.93,
        "threshold": 0.8,
        "characteristics": {"secrecy": 0.6, "isolation": 0.0},
        "verdict": "grooming",
        "reviewed_at": "2026-12-02T10:00:00Z",
        "features": vector().to_dict(),
        "text": None,
    }
    record.update(overrides)
    return record
