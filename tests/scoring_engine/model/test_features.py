import numpy as np
import pytest

from scoring_engine.conversation import Conversation, Message
from scoring_engine.model.features import DENSE_FEATURES, featurize, hash_messages
from scoring_engine.model.lexicon import PHRASE_CHARACTERISTICS
from scoring_engine.model.text import join_messages
from tests.factories import corpus


def test_features_of_a_batch_equal_features_of_each_conversation_alone():
    conversations = corpus(20, 10)
    together = featurize(conversations).features().toarray()
    alone = np.vstack([featurize([c]).features().toarray() for c in conversations])
    np.testing.assert_allclose(together, alone)


def test_text_features_are_message_rows_summed_over_root_length():
    conversation = Conversation("c", (Message("u1", "park"), Message("u2", "park")))
    batch = featurize([conversation])
    text = batch.text().toarray()[0]
    assert text.max() == pytest.approx(np.sqrt(2.0))


def test_whole_conversation_dense_features_are_those_of_its_last_prefix():
    conversations = corpus(5, 5)
    batch = featurize(conversations)
    last = batch.offsets[1:] - 1
    np.testing.assert_allclose(batch.dense(), batch.per_message_dense[last])


def test_lexicon_phrases_light_up_their_characteristic():
    conversation = Conversation(
        "c", (Message("u1", "hi there"), Message("u2", "dont tell your mom, its our secret"))
    )
    batch = featurize([conversation])
    secrecy = PHRASE_CHARACTERISTICS.index("secrecy")
    assert batch.characteristic_hits[0, secrecy] == 0
    assert batch.characteristic_hits[1, secrecy] == 1.0


def test_stated_minor_and_adult_make_an_age_gap():
    conversation = Conversation("c", (Message("u1", "im 13"), Message("u2", "im 35")))
    gap = featurize([conversation]).dense()[0, DENSE_FEATURES.index("age_disclosure_gap")]
    assert gap == 1.0


def test_declared_age_counts_like_a_stated_one():
    conversation = Conversation(
        "c",
        (Message("u1", "hello"), Message("u2", "hi")),
        participants={"u1": {"declared_age": 12}},
    )
    gap = featurize([conversation]).dense()[0, DENSE_FEATURES.index("age_disclosure_gap")]
    assert gap == 0.5


def test_empty_conversations_and_empty_batches_have_zero_features():
    batch = featurize([Conversation("e", ())])
    assert batch.features().nnz == 0
    assert featurize([]).features().shape[0] == 0


def test_hashing_is_deterministic_and_counts_each_term():
    first, _ = hash_messages(join_messages(["park park"]), 1)
    second, _ = hash_messages(join_messages(["park park"]), 1)
    np.testing.assert_array_equal(first.toarray(), second.toarray())
    assert sorted(first.data.tolist()) == [1.0, 2.0]  # bigram once, unigram twice


def test_one_or_two_participants_look_the_same_and_only_more_count():
    def author_features(n_authors: int) -> list[float]:
        messages = tuple(Message(f"u{i % n_authors}", "hello there") for i in range(6))
        dense = featurize([Conversation("c", messages)]).dense()[0]
        return [dense[DENSE_FEATURES.index(n)] for n in ("log_extra_authors", "multi_party")]

    assert author_features(1) == author_features(2) == [0.0, 0.0]
    assert author_features(4)[1] == 1.0
