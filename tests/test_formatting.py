"""describe_formatting: brackets, dashes, asterisks and numbered scaffolds as a channel; prose is not."""
from understanding_svc.formatting import describe_formatting


def test_asterisk_alternation_has_period_two():
    channel = describe_formatting("Step 15,000: * ** * ** * ** * ** * **")
    assert channel is not None and channel.alternation is not None
    assert channel.alternation.pattern == ["*", "**"] and channel.alternation.period == 2
    assert channel.symbols["*"] == 15 and channel.run_lengths == {1: 5, 2: 5}


def test_brackets_and_dashes_are_dense_structure():
    channel = describe_formatting("[Biode:high] -- [x] -- [y] -- {z} || ## == [[ ]]")
    assert channel is not None and channel.density > 0.5
    assert channel.symbols["-"] == 6 and channel.symbols["["] >= 3


def test_numbered_scaffold_with_repeated_content():
    text = "\n".join(f"{i}. You are learning" for i in range(1, 7))
    channel = describe_formatting(text)
    assert channel is not None and channel.scaffold is not None
    assert (channel.scaffold.items, channel.scaffold.distinct_content) == (6, 1)


def test_prose_and_ordinary_lists_are_not_a_channel():
    assert describe_formatting(
        "The cat sat on the mat - and then (briefly) it slept; it was a good day, wasn't it? "
        "She said: \"yes\", and left.") is None
    assert describe_formatting("1. Apples\n2. Pears\n3. Bananas") is None
