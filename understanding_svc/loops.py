"""Repetition loops in generated text: where the model got stuck repeating one unit.

The seed log treats loops as a monitoring signal ("[Biode:high quality, quality, ...]" x162,
"observe it, or observe it, or ...", numbered lists whose lines differ only in their number,
"0-0 0-0 ...", "* ** * **"), so we describe each one (unit, count, span, severity) rather than
merely flag it.

How: a tandem repeat with period p is a stretch where token i equals token i+p. We scan three
token streams (characters, whitespace words, non-blank lines), and for every period up to a bound
compute that equality for all positions at once with numpy, then read off maximal runs. Cost is
O(n * max_period) vectorised work per level, so it stays near-linear in the text length.
Words and lines are compared in a canonical form (lower case, digit runs folded to '#'), which is
what makes "1. You are learning / 2. You are learning" a loop. Overlapping findings are merged
keeping the one that covers most text, preferring line over word over char level for the same
stretch, and only primitive units are kept ("ab ab" never stands in for "ab").
"""
from __future__ import annotations

import re
from typing import Literal

import msgspec
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from shared.contract.events import Severity

Level = Literal["char", "word", "line"]

MAX_PERIOD = {"char": 24, "line": 16, "word": 64}  # word: a 200-char sentence is ~40 words
LEVEL_BONUS = {"line": 1.10, "word": 1.05, "char": 1.0}  # tie-break for the same stretch
LONG_UNIT_CHARS = 60  # a sentence-sized unit is a loop after 2 copies, shorter ones need 3
MIN_LOOP_CHARS = 9  # "had had", "!!!" and "..." stay out

_SEPARATOR = {"char": "", "word": " ", "line": "\n"}
_WORD = re.compile(r"\S+")
_LINE = re.compile(r"[^\n]*\S[^\n]*")
_DIGITS = re.compile(r"\d+")
_LETTER = re.compile(r"[^\W\d_]")
_ALNUM = re.compile(r"[^\W_]+")


class Loop(msgspec.Struct, frozen=True):
    unit: str  # canonical: lower case, digits folded to '#' (word and line level)
    raw_unit: str  # the first copy as it appears in the text
    count: int
    start: int  # char offsets into the text
    end: int
    level: Level
    severity: Severity
    period: int = 0  # the unit's length in tokens of its level
    coverage: float = 0.0  # share of the text's characters inside the loop
    to_end: bool = False  # the loop runs to the end of the text (generation never escaped it)


class _Tokens(msgspec.Struct):
    level: str
    ids: np.ndarray  # canonical token ids
    raw_ids: np.ndarray  # ids before digit folding (letterless units must repeat verbatim)
    starts: np.ndarray  # char offset of each token
    ends: np.ndarray
    canon: list[str]
    alnum: list[str]  # letters/digits only, to count a last copy cut short ("quality...]")


def find_loops(text: str) -> list[Loop]:
    """Every repetition loop in `text`, in order of position."""
    if len(text) < MIN_LOOP_CHARS:
        return []
    candidates = []
    for tokens in (_chars(text), _spans(text, _WORD, "word"), _spans(text, _LINE, "line")):
        candidates += _loops_at_level(text, tokens)
    return sorted(_merge(candidates), key=lambda loop: loop.start)


# --- token streams -------------------------------------------------------------------------------

def _chars(text: str) -> _Tokens:
    lower = text.lower()
    lower = lower if len(lower) == len(text) else text  # a few letters change length when lowered
    ids = np.frombuffer(lower.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    offsets = np.arange(len(text))
    return _Tokens("char", ids, ids, offsets, offsets + 1, list(lower), list(lower))


def _spans(text: str, pattern: re.Pattern, level: str) -> _Tokens:
    matches = list(pattern.finditer(text))
    raw = [" ".join(m.group().lower().split()) for m in matches]
    canon = [_DIGITS.sub("#", token) for token in raw]
    return _Tokens(
        level, _intern(canon), _intern(raw),
        np.array([m.start() for m in matches], dtype=np.int64),
        np.array([m.end() for m in matches], dtype=np.int64),
        canon, ["".join(_ALNUM.findall(token)) for token in raw],
    )


def _intern(tokens: list[str]) -> np.ndarray:
    table: dict[str, int] = {}
    return np.array([table.setdefault(t, len(table)) for t in tokens], dtype=np.int64)


# --- tandem runs ---------------------------------------------------------------------------------

def _tandem_runs(ids: np.ndarray, max_period: int, min_copies: np.ndarray) -> list[tuple[int, int, int]]:
    """(period, first index, run length) of each maximal stretch where ids[i] == ids[i + period]
    that spans at least min_copies[period - 1] copies of its unit."""
    n = len(ids)
    max_period = min(max_period, n - 1)
    if max_period < 1:
        return []
    sentinel = -1 - np.arange(max_period)  # padding that equals nothing
    windows = sliding_window_view(np.concatenate([ids, sentinel]), max_period + 1)[:n]
    equal = (windows[:, 1:] == windows[:, :1]).T  # equal[p - 1, i]: ids[i] == ids[i + p]
    edges = np.diff(np.pad(equal, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    periods = rows + 1
    lengths = ends - starts
    keep = (lengths + periods) // periods >= min_copies[rows]
    return list(zip(periods[keep].tolist(), starts[keep].tolist(), lengths[keep].tolist()))


def _loops_at_level(text: str, tokens: _Tokens) -> list[Loop]:
    loops = []
    max_period = MAX_PERIOD[tokens.level]
    min_copies = np.full(max_period, 2)
    if tokens.level == "char":
        min_copies[:] = [_char_min_copies(p) for p in range(1, max_period + 1)]
    for period, first, length in _tandem_runs(tokens.ids, max_period, min_copies):
        loop = _describe(text, tokens, period, first, length)
        if loop is not None:
            loops.append(loop)
    return loops


def _describe(text: str, tokens: _Tokens, period: int, first: int, length: int) -> Loop | None:
    unit_ids = tokens.ids[first:first + period]
    if not _is_primitive(unit_ids):
        return None  # the smaller period finds the same stretch
    full = (length + period) // period
    count, last = full, first + full * period  # one past the last full copy
    if last < len(tokens.ids) and _cut_short_copy(tokens, first, period, last):
        count, last = count + 1, last + 1
    unit = _SEPARATOR[tokens.level].join(tokens.canon[first:first + period])
    if tokens.level == "char" and any(c.isspace() for c in unit):
        return None  # a unit with spaces is the word level's to report
    if not _LETTER.search(unit):
        if not _verbatim(tokens, first, period, full):
            return None  # "1. 2. 3." folds to "#. #. #." but is a count, not a loop
        unit = text[int(tokens.starts[first]):int(tokens.ends[first + period - 1])].lower()
    start, end = int(tokens.starts[first]), int(tokens.ends[last - 1])
    unit_chars = int(tokens.ends[first + period - 1] - tokens.starts[first])
    if not _long_enough(tokens.level, period, unit_chars, count, end - start):
        return None
    raw_unit = text[start:unit_chars + start]
    coverage = (end - start) / len(text)
    to_end = not text[end:].strip() or len(text) - end <= max(unit_chars, 3)
    return Loop(unit, raw_unit, count, start, end, tokens.level,
                severity(count, unit_chars, coverage, to_end), period, round(coverage, 4), to_end)


def _is_primitive(unit: np.ndarray) -> bool:
    p = len(unit)
    return not any(p % d == 0 and np.array_equal(unit[d:], unit[:-d]) for d in range(1, p // 2 + 1))


def _cut_short_copy(tokens: _Tokens, first: int, period: int, last: int) -> bool:
    """A single-token unit whose last copy lost its punctuation ("quality...]") still counts."""
    return period == 1 and tokens.level == "word" and tokens.alnum[last] != "" \
        and tokens.alnum[last] == tokens.alnum[first]


def _verbatim(tokens: _Tokens, first: int, period: int, count: int) -> bool:
    raw = tokens.raw_ids[first:first + period * count]
    return bool(np.array_equal(raw[period:], raw[:-period]))


def _long_enough(level: str, period: int, unit_chars: int, count: int, span_chars: int) -> bool:
    if span_chars < MIN_LOOP_CHARS:
        return False
    if level == "char":
        return count >= _char_min_copies(period)
    if period == 1 and level == "word":
        return count >= 4  # "no, no, no" is emphasis; four is a loop
    return count >= (2 if unit_chars >= LONG_UNIT_CHARS else 3)


def _char_min_copies(period: int) -> int:
    return {1: 16, 2: 5}.get(period, 3)  # "==========" under a heading and "hahaha" are not loops


def severity(count: int, unit_chars: int, coverage: float, to_end: bool) -> Severity:
    """High when the loop dominates: many copies, most of the text, or it never ended."""
    repeated_chars = count * unit_chars
    if count >= 20 or (coverage >= 0.5 and repeated_chars >= 100) or (to_end and count >= 8):
        return "high"
    if count >= 6 or coverage >= 0.2 or to_end or repeated_chars >= 200:
        return "medium"
    return "low"


# --- merging -------------------------------------------------------------------------------------

def _merge(loops: list[Loop]) -> list[Loop]:
    """Keep the most informative loop for each stretch of text: the widest, then the higher level."""
    ranked = sorted(loops, key=lambda lp: (-(lp.end - lp.start) * LEVEL_BONUS[lp.level], lp.period))
    kept: list[Loop] = []
    for loop in ranked:
        if not any(_overlap(loop, other) > 0.5 * (loop.end - loop.start) for other in kept):
            kept.append(loop)
    return kept


def _overlap(a: Loop, b: Loop) -> int:
    return max(0, min(a.end, b.end) - max(a.start, b.start))
