from scoring_engine.model.text import batch_tokens, canonical_word, join_messages, normalise_words


def test_chat_spelling_and_standard_spelling_give_the_same_words():
    assert normalise_words("R U home 2nite??? lol") == normalise_words("Are you home tonight?")


def test_laughter_fillers_and_emoticons_are_erased():
    assert normalise_words("hahahaha :) lmao ok") == ["ok"]


def test_stretched_letters_are_cut_to_two():
    assert normalise_words("sooooo cooool") == normalise_words("soo cool")


def test_short_numbers_stay_and_long_numbers_are_masked():
    assert normalise_words("im 13 call 5551234") == ["im", "13", "call", "000"]


def test_batch_tokens_keep_message_boundaries_even_with_nul_inside():
    tokens = batch_tokens(join_messages(["a\x00b", "", "c"]))
    assert tokens == ["a", "b", "\x00", "\x00", "c", "\x00"]


def test_style_tokens_have_no_canonical_form():
    assert canonical_word("lol") == ""
    assert canonical_word("u") == "you"
