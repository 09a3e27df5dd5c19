"""Quality scores of one generated reflection, so prompt versions and steps can be compared in numbers.

The seed log read reflections by eye: the best ones (v1.3, step 13,000) had structured thinking and
uncertainty, later ones fell into repetition loops ("observe it, or observe it, ...") or into
structural symbols (brackets, dashes, asterisks) when language degraded. Each score names one of
those signals:

- distinct_1 / distinct_2: unique n-grams over all n-grams of words (lexical variety).
- seq_rep_4: 1 - unique 4-grams / all 4-grams (Welleck et al., 2019); high means looping.
- compression_ratio: bytes / zlib-compressed bytes; repetitive text compresses well, so high.
- uncertainty_share: share of sentences that use uncertainty language ("maybe", "not sure", ...).
- structure_ratio: share of characters that are structural symbols or list markers.
- length_words.

Text too short for an n-gram scores 0.0 for it rather than dividing by zero.
"""
from __future__ import annotations

import re
import zlib

_WORD = re.compile(r"\w+(?:['’]\w+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_UNCERTAIN = re.compile(
    r"\b(maybe|perhaps|possibly|probably|might|may be|could be|not sure|unsure|uncertain(?:ty)?|"
    r"i (?:do not|don['’]t) know|wonder(?:ing)?|unclear|i guess|"
    r"seems?|confus(?:ed|ing))\b",
    re.IGNORECASE,
)
_STRUCT_CHARS = set("[](){}<>|*-_=+#/\\~`^:;•–—")
_LIST_MARKER = re.compile(r"(?m)^\s*\d+[.)]")  # "1." / "12)" at a line start count as structure


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(tokens: list[str], n: int) -> float:
    grams = ngrams(tokens, n)
    return len(set(grams)) / len(grams) if grams else 0.0


def seq_rep_n(tokens: list[str], n: int = 4) -> float:
    grams = ngrams(tokens, n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def compression_ratio(text: str) -> float:
    raw = text.encode()
    return len(raw) / len(zlib.compress(raw, 9)) if raw else 0.0


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def uncertainty_share(text: str) -> float:
    parts = sentences(text)
    return sum(bool(_UNCERTAIN.search(s)) for s in parts) / len(parts) if parts else 0.0


def structure_ratio(text: str) -> float:
    visible = sum(not c.isspace() for c in text)
    if not visible:
        return 0.0
    symbols = sum(c in _STRUCT_CHARS for c in text)
    markers = sum(len(m.group().strip()) for m in _LIST_MARKER.finditer(text))
    return min(1.0, (symbols + markers) / visible)


def score_reflection(text: str) -> dict[str, float]:
    tokens = words(text)
    return {
        "distinct_1": distinct_n(tokens, 1),
        "distinct_2": distinct_n(tokens, 2),
        "seq_rep_4": seq_rep_n(tokens, 4),
        "compression_ratio": compression_ratio(text),
        "uncertainty_share": uncertainty_share(text),
        "structure_ratio": structure_ratio(text),
        "length_words": float(len(tokens)),
    }
