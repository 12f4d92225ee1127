import pytest

from scoring_engine.model.lexicon import (
    CHARACTERISTICS,
    LEXICON,
    age_gap_rating,
    declared_ages,
    stated_age,
)


@pytest.mark.parametrize(
    ("text", "age"),
    [
        ("im 13", 13),
        ("I'm only 14 lol", 14),
        ("i am fifteen", 15),
        ("13/f/texas", 13),
        ("35 m here", 35),
        ("she is 12 years old", 12),
        ("see you in 15 minutes", None),
        ("i have 2 dogs", None),
    ],
)
def test_stated_age(text, age):
    assert stated_age(text) == age


def test_every_phrase_characteristic_has_a_lexicon():
    assert set(LEXICON) == set(CHARACTERISTICS) - {"age_disclosure_gap"}
    assert len(CHARACTERISTICS) == 10


def test_minor_with_a_stated_adult_is_a_full_gap():
    assert age_gap_rating({"u1": [13], "u2": [35]}) == 1.0
    assert age_gap_rating({"u1": [13], "u2": []}) == 0.5
    assert age_gap_rating({"u1": [25], "u2": [30]}) == 0.0


def test_declared_ages_ignore_non_integers():
    assert declared_ages({"u1": {"declared_age": 13}, "u2": {"declared_age": "x"}}) == {"u1": 13}
