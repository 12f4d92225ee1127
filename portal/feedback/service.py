"""Feedback from engines: stored per reviewed conversation, read back for retraining.

- ``feedback_examples`` yields the latest verdict of every feedback id (a corrected
  verdict replaced the row), in a stable order, with the vector decoded.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.feedback.models import Feedback
from portal.organisations.models import Organisation
from portal.training.feedback import FeedbackExample
from scoring_engine.model.vectors import FeatureVector


def feedback_examples(session: Session, *, batch_size: int = 1000) -> Iterator[FeedbackExample]:
    """Every feedback record received, as a training example."""
    query = (
        select(Feedback, Organisation.name)
        .join(Organisation, Organisation.id == Feedback.organisation_id)
        .order_by(Feedback.received_at, Feedback.feedback_id)
        .execution_options(yield_per=batch_size)
    )
    for feedback, organisation in session.execute(query):
        yield FeedbackExample(
            feedback_id=str(feedback.feedback_id),
            organisation=organisation,
            bundle=feedback.bundle,
            verdict=feedback.verdict,
            score=feedback.score,
            vector=FeatureVector.from_bytes(
                feedback.vector,
                dim=feedback.vector_dim,
                nnz=feedback.vector_nnz,
                version=feedback.vector_version,
            ),
        )
