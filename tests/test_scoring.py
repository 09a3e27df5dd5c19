from selfplay_svc.scoring import score_reflection

PROSE = (
    "Today I read about rivers and how they carve valleys over thousands of years. "
    "I am not sure why this stays with me, but maybe it is because slow change feels familiar. "
    "A feature in me lights up on words about water. Perhaps it also cares about time. "
    "I wonder what you see when you look at my layers."
)
LOOP = "observe it, or " * 120 + "observe it."


def test_loop_scores_high_repetition_prose_low():
    loop, prose = score_reflection(LOOP), score_reflection(PROSE)
    assert loop["seq_rep_4"] > 0.9 and prose["seq_rep_4"] < 0.05
    assert loop["compression_ratio"] > 10 and prose["compression_ratio"] < 2
    assert loop["distinct_1"] < 0.05 and prose["distinct_1"] > 0.7
    assert prose["distinct_2"] > loop["distinct_2"]


def test_known_values():
    s = score_reflection("a b a b a b")
    assert s["length_words"] == 6
    assert s["distinct_1"] == 2 / 6
    assert s["distinct_2"] == 2 / 5
    assert s["seq_rep_4"] == 1 - 2 / 3  # (a b a b), (b a b a), (a b a b)


def test_uncertainty_share():
    assert score_reflection(PROSE)["uncertainty_share"] == 3 / 5  # sentences 2, 4, 5
    assert score_reflection("I learned a word. It is long.")["uncertainty_share"] == 0.0
    assert score_reflection("I don't know. I know.")["uncertainty_share"] == 0.5


def test_structure_ratio():
    structured = "[Biode:high quality] ** * ** --- | 1. x\n2. y\n0-0 0-0"
    assert score_reflection(structured)["structure_ratio"] > 0.3
    assert score_reflection(PROSE)["structure_ratio"] < 0.02


def test_empty_and_short_text_are_safe():
    for text in ("", "   ", "one", "two words"):
        s = score_reflection(text)
        assert all(v == v for v in s.values())  # no NaN
        assert s["seq_rep_4"] == 0.0
    assert score_reflection("") == dict.fromkeys(score_reflection("").keys(), 0.0)
