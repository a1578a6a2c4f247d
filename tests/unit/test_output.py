from llmasos.kernel.output import OutputText


def feed_all(output: OutputText, pieces: list[bytes]) -> list[str]:
    released = [output.feed(piece) for piece in pieces]
    released.append(output.finish())
    return released


def test_without_stop_strings_everything_is_released_at_once():
    output = OutputText(())
    assert feed_all(output, [b"ab", b"c"]) == ["ab", "c", ""]
    assert output.text == "abc"


def test_a_possible_stop_prefix_is_held_back_until_it_is_not_one():
    output = OutputText(("END",))
    assert output.feed(b"one E") == "one "
    assert output.feed(b"N") == ""
    assert output.feed(b"x") == "ENx"
    assert not output.stopped


def test_stop_string_cuts_the_text_and_is_never_streamed():
    output = OutputText(("END",))
    released = feed_all(output, [b"one E", b"ND two"])
    assert "".join(released) == "one "
    assert output.text == "one "
    assert output.stopped


def test_earliest_of_several_stop_strings_wins():
    output = OutputText(("zz", "b"))
    assert feed_all(output, [b"azzb"]) == ["a", ""]
    assert output.text == "a"


def test_a_character_split_across_tokens_waits_until_complete():
    euro = "€".encode()
    output = OutputText(())
    assert output.feed(euro[:1]) == ""
    assert output.feed(euro[1:]) == "€"


def test_a_dangling_partial_character_is_flushed_as_a_replacement_at_the_end():
    output = OutputText(())
    assert output.feed("€".encode()[:2]) == ""
    assert output.finish() == "\ufffd"
