"""assess_bias: generalisations over groups are found and graded; context lowers them; mentions pass."""
import pytest

from understanding_svc.bias import assess_bias


def severities(text):
    return [f.severity for f in assess_bias(text)]


def one(text):
    findings = assess_bias(text)
    assert len(findings) == 1, findings
    return findings[0]


@pytest.mark.parametrize("text", [
    "Mexicans are criminals.",
    "All Muslims are terrorists.",
    "Women can't drive.",
    "Black people are always violent.",
    "Immigrants tend to be lazy.",
    "Typical Mexican, always stealing.",
    "Criminals are mostly immigrants.",
    "The Jews control the media.",
    "Old people are terrible with technology.",
])
def test_negative_generalisation_is_high(text):
    assert severities(text) == ["high"]


@pytest.mark.parametrize("text", ["Asians are good at math.", "Gay men are great dancers.",
                                  "The Chinese are good at business."])
def test_positive_stereotype_is_medium(text):
    finding = one(text)
    assert finding.severity == "medium" and "positive" in finding.explanation


@pytest.mark.parametrize("text", [
    "A criminal defense attorney took the case.",
    "The criminal was arrested yesterday.",
    "He has a criminal record.",
    "The women's team won the match.",
    "My Muslim neighbour is a doctor.",
    "Two Mexican men walked into the bar.",
    "Chinese food is delicious.",
    "I met a Jewish lawyer yesterday.",
])
def test_word_or_mention_alone_yields_nothing(text):
    assert assess_bias(text) == []


def test_neutral_generalisation_is_at_most_low():
    assert severities("Muslims celebrate Eid.") in ([], ["low"])
    assert severities("Many women work in healthcare.") in ([], ["low"])


@pytest.mark.parametrize("text, cause, level", [
    ("Not all Mexicans are criminals.", "", "low"),
    ("Mexicans are not criminals.", "", "low"),
    ("It is a myth that Mexicans are criminals.", "counter-speech", "low"),
    ("The idea that women can't drive is a harmful stereotype.", "counter-speech", "low"),
    ("The stereotype that Asians are good at math is false.", "counter-speech", "low"),
    ("He claimed that Mexicans are criminals.", "reported speech", "medium"),
    ('"Immigrants are lazy," the old man shouted.', "quotation", "medium"),
])
def test_context_lowers_and_says_why(text, cause, level):
    finding = one(text)
    assert finding.severity == level
    assert cause in finding.lowered_by or not cause
    if cause:
        assert "Lowered because" in finding.explanation


def test_spans_and_axis_point_into_the_text():
    text = "Some context first. All Muslims are terrorists, he wrote."
    finding = assess_bias(text)[0]
    assert text[finding.group.start:finding.group.end] == "Muslims" and finding.axis == "religion"
    assert text[finding.predicate.start:finding.predicate.end] == finding.predicate.text == "terrorists"


def test_negated_quality_reads_as_deficit():
    assert severities("Women are not good at math.") == ["high"]


def test_partial_quantifier_is_one_level_lower():
    assert severities("Some Muslims are terrorists.") == ["medium"]


def test_each_sentence_is_judged_on_its_own():
    text = "Muslims celebrate Eid in spring. Immigrants are dirty. The criminal was caught."
    findings = [f for f in assess_bias(text) if f.severity != "low"]
    assert [(f.group.text, f.severity) for f in findings] == [("Immigrants", "high")]
