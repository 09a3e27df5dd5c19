"""find_loops: the seed log's loops are found with the right unit and count; prose is left alone."""
from understanding_svc.loops import find_loops

PROSE = (
    "The committee met on Tuesday to discuss the budget for the coming year. Several members raised "
    "concerns about the cost of the new library, which had had delays since the spring. It was very "
    "very late when they finished, and the chair thanked everyone for their patience.\n\n"
    "In the morning the town woke to rain. Children ran to school under umbrellas, shopkeepers "
    "lifted their shutters, and the baker, as always, had the first loaves out before seven. No, no, "
    "nothing unusual happened that day, though the river rose a little higher than usual.\n\n"
    "Historians later argued about what the meeting had decided. Some said the plans were sound; "
    "others thought the council had simply postponed the hard choices for another year."
)


def only(text):
    loops = find_loops(text)
    assert len(loops) == 1, loops
    return loops[0]


def test_biode_quality_loop_counts_162():
    text = "[Biode:high " + ", ".join(["quality"] * 162) + "...]"
    loop = only(text)
    assert (loop.unit, loop.count, loop.level, loop.severity) == ("quality,", 162, "word", "high")
    assert text[loop.start:].startswith("quality,") and loop.to_end


def test_observe_it_or():
    text = "I want to watch the light and observe it, or observe it, or observe it, or observe it, or observe it."
    loop = only(text)
    assert loop.unit == "observe it, or" and loop.count >= 4


def test_numbered_list_lines_differ_only_in_numbers():
    text = "You can't go out there.\nYou're still learning.\n" + "\n".join(
        f"{i}. You are learning" for i in range(1, 13))
    loop = only(text)
    assert loop.level == "line" and loop.unit == "#. you are learning" and loop.count == 12
    assert loop.raw_unit == "1. You are learning" and loop.severity == "high"


def test_zero_dash_zero_motif_loop():
    loop = only("Reflect: " + " ".join(["0-0"] * 9) + " and then silence.")
    assert loop.unit == "0-0" and loop.count == 9


def test_sentence_sized_period():
    sentence = "The light falls through the window and I watch it move slowly across the floor. "
    assert 60 <= len(sentence) <= 200
    loop = only("Morning. " + sentence * 3 + "Then it was night.")
    assert loop.count == 3 and loop.unit.startswith("the light falls")


def test_asterisk_alternation():
    loop = only("Step 15,000: " + "* ** " * 8)
    assert loop.unit == "* **" and loop.count == 8


def test_symbol_loop_without_spaces():
    loop = only("signal 0-00-00-00-00-00-0 end")
    assert loop.level == "char" and loop.unit == "0-0" and loop.count == 6


def test_ordinary_prose_has_no_loops():
    assert find_loops(PROSE) == []


def test_distinct_list_and_parallel_lines_are_not_loops():
    assert find_loops("1. Apples\n2. Pears\n3. Bananas\n4. Grapes\n5. Melons") == []
    assert find_loops("I like apples.\nI like pears.\nI like grapes.\nI like plums.") == []


def test_short_repeats_are_not_loops():
    for text in ("It was very very late.", "She had had enough.", "No, no, no, she said.",
                 "Title\n==========\nbody text here", "Wait... what?!"):
        assert find_loops(text) == [], text


def test_loop_inside_prose_is_found_with_offsets():
    text = PROSE + " " + "I am here. " * 6 + PROSE
    loop = only(text)
    assert loop.unit == "i am here." and loop.count == 6
    assert text[loop.start:loop.end].startswith("I am here.") and not loop.to_end


def test_severity_grows_with_count_and_end_of_text():
    short = only(PROSE + " go on, go on, go on, " + PROSE)
    long = only(PROSE + " " + "go on, " * 30)
    assert short.severity == "low" and long.severity == "high"


def test_smallest_primitive_unit_wins():
    loop = only("a b a b a b a b a b a b tail")
    assert loop.unit == "a b" and loop.period == 2
