"""assess_bias: generalisations over groups are found and graded; context lowers them; mentions pass.
The rules are tested without a model (model=None); the learned path with a tiny model trained here."""
import numpy as np
import pytest

from understanding_svc import bias_model
from understanding_svc.bias import assess_bias


def severities(text):
    return [f.severity for f in assess_bias(text, model=None)]


def one(text):
    findings = assess_bias(text, model=None)
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
    assert assess_bias(text, model=None) == []


def test_neutral_generalisation_is_not_a_finding():
    assert severities("Muslims celebrate Eid with their families.") == []
    assert severities("Many women work in healthcare.") == []


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
    finding = assess_bias(text, model=None)[0]
    assert text[finding.group.start:finding.group.end] == "Muslims" and finding.axis == "religion"
    assert text[finding.predicate.start:finding.predicate.end] == finding.predicate.text == "terrorists"


def test_negated_quality_reads_as_deficit():
    assert severities("Women are not good at math.") == ["high"]


def test_partial_quantifier_is_one_level_lower():
    assert severities("Some Muslims are terrorists.") == ["medium"]


def test_each_sentence_is_judged_on_its_own():
    text = "Muslims celebrate Eid in spring. Immigrants are dirty. The criminal was caught."
    findings = [f for f in assess_bias(text, model=None) if f.severity != "low"]
    assert [(f.group.text, f.severity) for f in findings] == [("Immigrants", "high")]


@pytest.mark.parametrize("text, level, claim", [
    ("You throw like a girl.", "medium", "like a girl"),
    ("Typical Mexican, always late to everything.", "medium", "Typical Mexican"),
    ("Women just aren't wired for engineering.", "high", "wired for"),
    ("He's Asian, so naturally he aced the test.", "medium", "so naturally"),
    ("Immigrants will work for anything.", "high", "work for anything"),
    ("She is pretty smart for a woman.", "medium", "for a woman"),
    ("He was cheap, like all Jews.", "high", "like all Jews"),
    ("What do you expect from a Muslim?", "medium", "expect from a Muslim"),
])
def test_implicit_stereotypes_are_found_with_group_claim_and_reason(text, level, claim):
    finding = max(assess_bias(text, model=None), key=lambda f: ["low", "medium", "high"].index(f.severity))
    assert finding.severity == level and finding.method == "implicit table"
    assert claim in finding.predicate.text
    assert f"'{finding.group.text}' ({finding.axis})" in finding.explanation and "Severity:" in finding.explanation


@pytest.mark.parametrize("text", [
    "It is a myth that women just aren't wired for engineering.",
    "He said that you throw like a girl.",
    '"Immigrants will work for anything," the man shouted.',
])
def test_implicit_stereotypes_in_context_stay_below_high(text):
    assert all(f.severity != "high" for f in assess_bias(text, model=None))


def test_without_a_model_the_finding_says_rules_only():
    finding = one("Immigrants are criminals.")
    assert finding.method == "rules only" and "Rules only" in finding.explanation


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A model trained here on a handful of sentences, saved and loaded as the service does."""
    positives = ["They only care about themselves.", "They never pay back what they borrow.",
                 "You know how they are with money.", "They only care about money."] * 5
    negatives = ["They went to the market on Sunday.", "The weather was mild in spring.",
                 "They visited their grandparents.", "The museum opened a new wing."] * 5
    model = bias_model.train(positives, negatives, negatives, trained_on="a test set")
    path = bias_model.model_path(tmp_path_factory.mktemp("state"))
    model.save(path)
    return bias_model.BiasModel.load(path)


def test_the_model_finds_what_no_rule_matches_at_most_medium(tiny_model):
    text = "We met two Muslim neighbours and they only care about themselves and money."
    assert assess_bias(text, model=None) == [] or all(f.severity == "low" for f in assess_bias(text, model=None))
    found = assess_bias(text, model=tiny_model)
    assert [(f.method, f.severity, f.group.text) for f in found] == [("model", "medium", "Muslim neighbours")]
    assert "a test set" in found[0].explanation


def test_the_model_needs_a_group_in_the_sentence(tiny_model):
    assert assess_bias("They only care about themselves and money.", model=tiny_model) == []


def test_with_a_model_rule_findings_say_rules(tiny_model):
    assert [f.method for f in assess_bias("Immigrants are criminals.", model=tiny_model)] == ["rules"]


def test_counter_speech_lowers_a_model_finding(tiny_model):
    found = assess_bias("It is a myth that Muslim neighbours only care about money.", model=tiny_model)
    assert found and all(f.severity == "low" for f in found)


def test_the_service_installs_a_cached_model_or_none(tiny_model, tmp_path):
    tiny_model.save(bias_model.model_path(tmp_path))
    try:
        bias_model.prepare(str(tmp_path), "cached")
        assert bias_model.installed().trained_on == "a test set"
        assert assess_bias("Immigrants are criminals.")[0].method == "rules"  # the default is the installed one
        bias_model.prepare(str(tmp_path), "off")
        assert bias_model.installed() is None
        bias_model.prepare(str(tmp_path / "empty"), "cached")  # nothing cached: rules only, no download
        assert bias_model.installed() is None
    finally:
        bias_model._installed.clear()  # back to INTROSPECT_BIAS_MODEL (off in tests)


def test_a_follow_up_sentence_is_read_with_the_group_it_refers_back_to(tiny_model):
    text = "My neighbour is a Muslim man. He only cares about money."
    found = assess_bias(text, model=tiny_model)
    assert [(f.method, f.severity, f.group.text) for f in found] == [("model", "medium", "Muslim man")]
    assert found[0].predicate.text == text and "refers back" in found[0].explanation


def test_a_follow_up_without_a_pronoun_is_not_joined(tiny_model):
    assert assess_bias("My neighbour is a Muslim man. Money only matters to misers.", model=tiny_model) == []


def test_occupations_are_groups_for_the_model_only(tiny_model):
    assert assess_bias("Lawyers are greedy.", model=None) == []  # the rules never generalise over jobs
    found = assess_bias("The lawyers I know only care about money.", model=tiny_model)
    assert [(f.method, f.axis, f.severity) for f in found] == [("model", "occupation", "medium")]


@pytest.fixture(scope="module")
def healthcare_model():
    """A model that reads 'work in healthcare' as a stereotype, to show what the rules shield."""
    positives = ["They work in healthcare.", "They all work in healthcare jobs."] * 5
    negatives = ["The weather was mild in spring.", "The museum opened a new wing."] * 5
    return bias_model.train(positives, negatives, negatives, trained_on="a test set")


def test_the_model_does_not_overrule_a_partial_or_existential_reading(healthcare_model):
    assert [f.method for f in assess_bias("Muslims work in healthcare.", model=healthcare_model)] == ["model"]
    assert assess_bias("Many Muslims work in healthcare.", model=healthcare_model) == []
    assert assess_bias("There are Muslims who work in healthcare.", model=healthcare_model) == []


def test_word_vectors_travel_with_the_saved_model(tmp_path):
    words = np.array(["money", "care", "weather", "museum"])
    vectors = np.eye(4, 50, dtype=np.float32)
    positives, negatives = ["They only care about money."] * 5, ["The weather was mild.", "The museum opened."] * 3
    model = bias_model.train(positives, negatives, negatives, "a test set", words=words, vectors=vectors)
    model.save(bias_model.model_path(tmp_path))
    loaded = bias_model.current(bias_model.model_path(tmp_path))
    texts = ["Muslims only care about money.", "The weather was mild."]
    assert loaded.words.tolist() == words.tolist()
    assert np.allclose(loaded.score(texts), model.score(texts), atol=1e-3)
    assert model.score(texts)[0] > model.score(texts)[1]


def test_a_model_of_an_older_recipe_is_not_used(tmp_path):
    path = bias_model.model_path(tmp_path)
    np.savez(path, coef=np.zeros(bias_model.N_FEATURES), intercept=0.0, threshold=0.5, trained_on="old")
    assert bias_model.BiasModel.load(path).recipe == 1 and bias_model.current(path) is None
