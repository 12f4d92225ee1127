import numpy as np
import pytest

from scoring_engine.model.classifier import CalibratedLinearClassifier, source_balanced_weights
from scoring_engine.model.features import N_HASH_FEATURES, featurize
from scoring_engine.model.scorer import GroomingModel
from tests.factories import corpus


@pytest.fixture(scope="session")
def small_model() -> GroomingModel:
    """A model trained on the synthetic corpus (seconds, no real data)."""
    conversations = corpus()
    batch = featurize(conversations)
    labels = [c.label == "grooming" for c in conversations]
    y = np.array(labels)
    classifier = CalibratedLinearClassifier(
        C=1.0, min_positive_groups=2, filtered_columns=N_HASH_FEATURES
    ).fit(
        batch.features(),
        y,
        sample_weight=source_balanced_weights(y, [c.source for c in conversations]),
        groups=[c.case for c in conversations],
    )
    return GroomingModel(classifier=classifier, recommended_threshold=0.5)
