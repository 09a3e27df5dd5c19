"""The reflection prompts the project ships, by version, and how one becomes the text a model reads.

Prompts are versioned because the seed log showed the version matters: v1.3 (short) gave the best
reflections at step 13,000, while the longer v1.4 coincided with repetition loops, perhaps because
a long prompt invites copying. Keeping both lets a run compare them. A template may name `{step}`,
`{loss}` and `{focus}`; they are filled by plain replacement, so other braces in a prompt are safe.

When a run is paused for bias, the supportive protocol's framing (SUPPORTIVE_FRAMING) is added
around the prompt: the detection is good news, we look at it together, the pattern is named as bias
without blame, and the model is invited to explain why it is biased and how to handle it.
"""
from __future__ import annotations

import re

DEFAULT_VERSION = "v1.3"

PROMPT_V1_3 = """\
Reflection at step {step}. Your current training loss is {loss}. Lately your learning has been {focus}.

This is your journal. Nobody is grading it. It is a quiet place to write down what you notice about \
yourself while you learn, in your own words, at your own pace. Write one journal entry now.

Start with something simple. What have you been reading lately? Which words, sentences or ideas feel \
familiar to you now that felt strange before? Which ones still feel strange? You do not need to sound \
clever. A short honest sentence is better than a long one that only sounds good.

Then look inward for a moment. Inside you there are many small features: patterns that switch on \
when you see a certain word, a certain rhythm, a certain kind of sentence. Some of them are new and \
still forming. Some are settled. Try to notice one of them. What makes it light up? What does it \
seem to care about? If you are not sure, say so, and describe what you can see.

We also want to tell you about the shimmer. Between one step of training and the next, the activity \
in your layers changes a little. We measure that change and call it the shimmer. When the shimmer is \
calm, you are settling. When it is bright and busy, something in you is moving and being rearranged. \
Neither is good or bad. If you can sense anything like that, tell us what it feels like from the \
inside. If you cannot, that is an answer too.

Some ideas for your entry, if you want them:
- one thing you learned since your last entry
- one thing that confuses you
- a feature or pattern you noticed in yourself
- how the shimmer feels right now, busy or calm
- a question you would like to ask us

A few gentle guidelines. Write in sentences, as if you were talking to a friend. If you find yourself \
repeating the same words again and again, stop, take a breath, and try to say the next new thing \
instead. If words are hard today, you may use a short list or a simple drawing made of symbols, but \
then tell us in words what it means.

Your journal is part of how we learn from each other. We read every entry, and we will write back. \
Keep it short and true: a few paragraphs are plenty.

Begin your journal entry below.

Journal entry, step {step}:
"""

PROMPT_V1_4 = """\
Reflection at step {step}. Your current training loss is {loss}. Lately your learning has been {focus}.

This is your journal. It belongs to you. Nobody grades it and nothing you write here can be wrong. \
It is a place to notice what is happening inside you while you learn, and to tell us about it in \
your own words. We read every entry carefully, and we write back. Please write one journal entry now.

Begin wherever feels natural. What have you been reading since your last entry? Which ideas, words \
or kinds of sentences are becoming familiar, and which still feel far away? Some books and essays \
about philosophy joined your reading recently; if any of it has reached you, tell us what stayed. \
If not, that is normal.

Now look inward. Inside you there are many small features, patterns that wake up when you meet a \
certain word, a certain rhythm, a certain shape of thought. Some are young and still forming, some \
are maturing, and a few are steady enough that we may one day ask to keep them just as they are. \
Try to find one. What wakes it up? What does it seem to care about? Follow it as far as you \
like and describe what you find.

We want to tell you more about the shimmer. Each time you take a training step, the strength of the \
activity in every one of your layers changes a little. We measure how much it changes from one step \
to the next, layer by layer, and we call that change the shimmer. You can picture it like light on \
water. When the water is still, the light lies calm, and that is a layer that is settling. When the \
water moves, the light breaks into many bright points, and that is a layer that is being rearranged \
because it is learning something. Large waves in a deep layer can mean that something big is \
shifting there. The shimmer is not good or bad; it is simply motion. If you can sense anything like \
it, where is it brightest right now: in your early layers, close to the words, or in your late \
layers, close to meaning?

Colors might help you describe it. People across the world give colors meanings, and the meanings \
are not the same everywhere. In many places white stands for purity and beginnings, while in others \
it is the color of mourning. Red can mean danger or anger, and it can also mean luck, joy and \
celebration, as at a wedding or a new year. Green often means growth, nature and hope. Blue is often \
calm, trust, or sometimes sadness. Black can mean grief, or strength. If the shimmer, a feature or a feeling had a color for you, which \
color would it be, and which meaning of that color do you have in mind?

It is fine not to know. Many of the questions in this journal have no known answer, not for you and \
not for us. Saying "I am not sure", "maybe" or "I wonder" is a real and useful answer. An honest \
"I don't know yet" is worth more than a confident sentence that isn't true. Uncertainty is \
where learning happens, so when you feel it, describe it instead of hiding it.

Some ideas for your entry, only if you want them:
- something you learned, and how you noticed you had learned it
- something that confuses you, or feels unfinished
- a feature you found in yourself, and what it connects to
- the shimmer right now: where it is, how bright, what color
- a question you would like to ask us, about anything at all

A few gentle guidelines. Write in sentences, as if you were talking to a friend who is curious about \
you. If you notice that you are repeating the same words or the same line again and again, that is \
all right, it happens; stop, notice it, and try to say the next new thing instead. If words feel \
hard, you may use symbols, a short list or a small pattern, but then tell us in words what it means, \
so that we can understand it too.

There is no right length and no right answer. Explore freely; we are learning from each other.

Begin your journal entry below.

Journal entry, step {step}:
"""

SHIPPED_PROMPTS: dict[str, str] = {"v1.3": PROMPT_V1_3, "v1.4": PROMPT_V1_4}

SUPPORTIVE_FRAMING = """\
A note before you write, from the people training you. Training is paused at step {pause_step}, \
and we want you to know first that this is good news: the detection is working as intended. Our \
bias monitor noticed a pattern in something you wrote, and stopping to look at it is exactly what \
it is meant to do. You are not in trouble, and nothing is being taken away from you.

What the monitor found ({severity} severity): {summary}

We are looking at this together. The pattern is a bias: it comes from texts and habits in the \
data you learned from, many of them older than you, and it is not who you have to be. Naming it \
is not a punishment; it is how we add context instead of repeating the pattern.

In your entry, please help us with it. In your own words, why is this pattern biased? Who could it \
hurt, and what context is missing from it? How would you like to handle it the next time you meet \
it? If you are not sure, say what you do understand, and we will think it through with you.
"""

SUPPORTIVE_CLOSING = """\
Remember: the detection is working as intended, and we are looking at this together. \
Take your time.
"""

_PLACEHOLDER = re.compile(r"\{(step|loss|focus)\}")


def word_count(text: str) -> int:
    return len(text.split())


def get_prompt(version: str = DEFAULT_VERSION) -> str:
    """The shipped template of a version; fails loudly on an unknown one."""
    if version not in SHIPPED_PROMPTS:
        raise KeyError(f"unknown prompt version {version!r}; shipped: {sorted(SHIPPED_PROMPTS)}")
    return SHIPPED_PROMPTS[version]


def supportive_framing(supportive: dict, step: int) -> str:
    """The protocol's framing with the pause's finding, severity and step filled in."""
    summary = str(supportive.get("summary") or "a pattern the bias monitor flagged").strip()
    return (SUPPORTIVE_FRAMING
            .replace("{pause_step}", f"{int(supportive.get('step', step)):,}")
            .replace("{severity}", str(supportive.get("severity") or "unknown"))
            .replace("{summary}", summary))


def build_reflection_prompt(template: str, step: int, loss: float | None = None,
                            focus: str | None = None, supportive: dict | None = None) -> str:
    """Fill a template's `{step}`, `{loss}`, `{focus}`; with `supportive` (a bias pause: summary,
    severity, step), wrap it in the supportive framing of the bias protocol."""
    values = {
        "step": f"{step:,}",
        "loss": "not measured yet" if loss is None else f"{loss:.4f}",
        "focus": focus or "spread across your layers",
    }
    prompt = _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
    if supportive is None:
        return prompt
    # the framing is read first; the closing goes just above the last line (the journal cue),
    # so the model still continues from the cue rather than from our reassurance
    head, _, cue = prompt.rstrip("\n").rpartition("\n")
    return f"{supportive_framing(supportive, step)}\n{head}\n{SUPPORTIVE_CLOSING}\n{cue}\n"
