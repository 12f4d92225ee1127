import numpy as np

from scoring_engine.conversation import Conversation, Message
from scoring_engine.model.features import featurize
from scoring_engine.model.lexicon import CHARACTERISTICS
from tests.factories import GROOMING_LINES, corpus


def _grooming_like(n_lines: int = 8) -> Conversation:
    texts = ["hi", "hello", "what are you up to", *GROOMING_LINES[:n_lines]]
    return Conversation("g", tuple(Message(f"u{1 + i % 2}", t) for i, t in enumerate(texts)))


def test_scores_are_probabilities_with_every_characteristic_rated(small_model):
    results = small_model.score_batch(corpus(10, 10, seed=3))
    for result in results:
        assert 0.0 <= result.score <= 1.0
        assert list(result.characteristics) == list(CHARACTERISTICS)
        assert all(0.0 <= v <= 1.0 for v in result.characteristics.values())
        assert result.flagged == (result.score >= result.threshold)


def test_grooming_talk_scores_above_ordinary_talk(small_model):
    grooming, ordinary = small_model.score_batch(
        [_grooming_like(), Conversation("n", (Message("u1", "the oven is broken"),) * 6)]
    )
    assert grooming.score > 0.9
    assert ordinary.score < 0.1


def test_running_score_matches_rescoring_every_prefix(small_model):
    conversation = _grooming_like(12)
    running = small_model.running_probabilities(featurize([conversation]))
    rescored = [
        small_model.score_batch([Conversation("p", conversation.messages[: k + 1])])[0].score
        for k in range(len(conversation.messages))
    ]
    np.testing.assert_allclose(np.round(running, 4), rescored, atol=1e-4)


def test_first_flag_message_is_where_the_running_score_first_crosses(small_model):
    conversation = _grooming_like(12)
    result = small_model.score_batch([conversation], threshold=0.5)[0]
    running = small_model.running_probabilities(featurize([conversation]))
    assert result.first_flag_message == int(np.flatnonzero(running >= 0.5)[0])
    assert result.first_flag_message >= 3  # the greetings alone do not flag


def test_evidence_points_at_messages_without_copying_text(small_model):
    conversation = _grooming_like(12)
    result = small_model.score_batch([conversation])[0]
    assert result.evidence
    for item in result.evidence:
        assert 0 <= item.message < len(conversation.messages)
        assert item.author == conversation.messages[item.message].author
        assert item.characteristic in CHARACTERISTICS
    line = result.to_dict()
    assert set(line) == {
        "id",
        "score",
        "flagged",
        "threshold",
        "characteristics",
        "evidence",
        "first_flag_message",
        "bundle",
    }
    assert not any(m.text in str(line) for m in conversation.messages if len(m.text) > 8)


def test_empty_conversation_scores_without_flag_or_evidence(small_model):
    result = small_model.score_batch([Conversation("e", ())])[0]
    assert result.first_flag_message is None
    assert result.evidence == []


def test_streaming_keeps_input_order_across_batches(small_model):
    conversations = corpus(30, 30, seed=5)
    streamed = [r.id for r in small_model.score_stream(conversations, batch_messages=20)]
    assert streamed == [c.id for c in conversations]
