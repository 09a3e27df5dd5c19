"""Formatting as a channel: describe the structure a sample falls back on when its language degrades.

The seed log saw brackets, dashes and asterisks in non-random, consistent arrangements ("*" vs
"**" in a structured sequence, numbered scaffolds) once words collapsed, and read them as a
possible channel rather than noise. This module describes that structure in numbers (which
symbols, how many, in what runs, alternating with which period, over what share of the text) so
it can be compared across steps; ordinary prose with normal punctuation yields None.
"""
from __future__ import annotations

import re
from collections import Counter

import msgspec

STRUCTURE_CHARS = frozenset("*#[]{}()<>|_=~+/\\^`-–—•·")  # not prose punctuation (.,;:!?'")
MIN_DENSITY = 0.15  # symbol chars / non-space chars above which the text reads as structure
MIN_SYMBOLS = 8
MIN_LONG_RUN = 8  # a run like "--------" is structure on its own
MIN_ALTERNATION_COPIES = 3
MIN_SCAFFOLD_ITEMS = 3

_SYMBOL_RUN = re.compile("[" + re.escape("".join(sorted(STRUCTURE_CHARS))) + "]+")
_SYMBOL_TOKEN = re.compile(r"(?<!\S)[^\w\s]+(?!\S)")  # a whitespace token made of symbols only
_NUMBERED = re.compile(r"(?m)^[ \t]*(\d{1,4})[.):][ \t]*(.*)$")


class Alternation(msgspec.Struct, frozen=True):
    pattern: list[str]  # one period of the alternating symbol tokens, e.g. ["*", "**"]
    period: int
    copies: int
    start: int
    end: int


class Scaffold(msgspec.Struct, frozen=True):
    items: int  # numbered lines in sequence
    first_number: int
    distinct_content: int  # how many different texts follow the numbers
    empty_items: int
    start: int
    end: int


class FormattingChannel(msgspec.Struct, frozen=True):
    symbols: dict[str, int]  # structure symbol -> count
    symbol_chars: int
    density: float  # symbol chars / non-space chars
    run_lengths: dict[int, int]  # length of a maximal symbol run -> how many such runs
    longest_run: str
    alternation: Alternation | None
    scaffold: Scaffold | None
    reasons: list[str]  # plain words for why this reads as a channel
    start: int  # span of the structured part
    end: int


def describe_formatting(text: str) -> FormattingChannel | None:
    """The structure `text` uses as a channel, or None when it reads as ordinary prose."""
    runs = list(_SYMBOL_RUN.finditer(text))
    symbols = Counter(ch for run in runs for ch in run.group())
    symbol_chars = sum(symbols.values())
    visible = sum(1 for ch in text if not ch.isspace())
    density = symbol_chars / visible if visible else 0.0
    longest = max((run.group() for run in runs), key=len, default="")
    alternation = find_alternation(text)
    scaffold = find_scaffold(text)
    reasons = _reasons(density, symbol_chars, longest, alternation, scaffold)
    if not reasons:
        return None
    spans = [(r.start(), r.end()) for r in runs] + [(x.start, x.end) for x in (alternation, scaffold) if x]
    return FormattingChannel(
        dict(symbols.most_common()), symbol_chars, round(density, 4),
        dict(sorted(Counter(len(r.group()) for r in runs).items())), longest, alternation, scaffold,
        reasons, min(s for s, _ in spans), max(e for _, e in spans),
    )


def _reasons(density, symbol_chars, longest, alternation, scaffold) -> list[str]:
    reasons = []
    if density >= MIN_DENSITY and symbol_chars >= MIN_SYMBOLS:
        reasons.append(f"{density:.0%} of visible characters are structure symbols")
    if len(longest) >= MIN_LONG_RUN:
        reasons.append(f"a run of {len(longest)} symbols ({longest[:20]!r})")
    if alternation:
        reasons.append(f"symbols alternate with period {alternation.period} "
                       f"({' '.join(alternation.pattern)}) x{alternation.copies}")
    if scaffold and _is_bare(scaffold):
        reasons.append(f"numbered scaffold of {scaffold.items} items with "
                       f"{scaffold.distinct_content} distinct contents")
    return reasons


def _is_bare(scaffold: Scaffold) -> bool:
    """A numbered list whose items are empty or the same text is scaffolding, not a list."""
    return scaffold.empty_items * 2 >= scaffold.items or scaffold.distinct_content * 2 <= scaffold.items


def find_alternation(text: str, max_period: int = 6) -> Alternation | None:
    """The longest stretch where symbol-only tokens cycle through a pattern of ≥ 2 distinct tokens."""
    tokens = list(_SYMBOL_TOKEN.finditer(text))
    values = [t.group() for t in tokens]
    best = None
    for period in range(2, max_period + 1):
        for first, copies in _periodic_stretches(values, period):
            pattern = values[first:first + period]
            if len(set(pattern)) < 2 or copies < MIN_ALTERNATION_COPIES:
                continue
            if best is None or copies * period > best.copies * best.period:
                last = tokens[first + copies * period - 1]
                best = Alternation(pattern, period, copies, tokens[first].start(), last.end())
    return best


def _periodic_stretches(values: list[str], period: int):
    """(first index, whole copies) of each maximal stretch where values[i] == values[i + period]."""
    i, n = 0, len(values)
    while i + period < n:
        j = i
        while j + period < n and values[j] == values[j + period]:
            j += 1
        if j > i:
            yield i, (j - i + period) // period
        i = j + 1


def find_scaffold(text: str) -> Scaffold | None:
    """The longest run of lines numbered in sequence (1., 2., 3. ...)."""
    best: list[re.Match] = []
    current: list[re.Match] = []
    for match in _NUMBERED.finditer(text):
        if current and int(match.group(1)) != int(current[-1].group(1)) + 1:
            current = []
        current.append(match)
        if len(current) > len(best):
            best = list(current)
    if len(best) < MIN_SCAFFOLD_ITEMS:
        return None
    contents = [" ".join(m.group(2).lower().split()) for m in best]
    return Scaffold(len(best), int(best[0].group(1)), len(set(c for c in contents if c)),
                    sum(1 for c in contents if not c), best[0].start(), best[-1].end())
