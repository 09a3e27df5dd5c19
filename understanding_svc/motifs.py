"""Motifs: short symbol-like tokens that recur across samples over training steps.

The seed log noticed "0-0" segments turning up sample after sample, often inside repetition
loops, and read them as a possible marker of a "stuck" state (high norms -> repetition -> 0-0).
A motif only means something across samples, so MotifTracker keeps state: it is fed one sample at
a time with the loop spans found in it, and reports a token once it has appeared in at least
`min_samples` different samples, with when it first appeared and how often it sits inside a loop.
Its state is plain JSON (to_dict/from_dict), so a restarted service picks up where it left off.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

import msgspec

_TOKEN = re.compile(r"\S+")
_EDGE_PUNCT = "\"'“”‘’.,;:!?"  # prose punctuation stripped from a token's ends
_PROSE_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")  # "well-known", "don't"
_NUMBER = re.compile(r"[+-]?[$£€]?\d+(?:[.,:/]\d+)*%?")  # "1990", "3.5", "12:30" are counts
_ABBREVIATION = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]?")  # "e.g", "U.S"
_PROSE_SYMBOLS = frozenset({"-", "–", "—", "&", "/", "…", "...", "--"})
_WRAPPERS = "()[]{}<>*_\"'“”‘’"  # "(briefly)" and "*really*" are prose words in brackets


class Motif(msgspec.Struct):
    text: str
    first_step: int
    last_step: int
    count: int  # occurrences over all samples
    samples: int  # distinct samples it appeared in
    sample_ids: list[str]  # the first `max_ids` of them
    in_loop: int  # occurrences inside a loop span
    reported: bool = False

    @property
    def loop_share(self) -> float:
        return self.in_loop / self.count if self.count else 0.0

    @property
    def co_occurs_with_loops(self) -> bool:
        return self.loop_share >= 0.5


def motif_tokens(text: str) -> list[tuple[str, int, int]]:
    """(motif, start, end) for each token that is unusual for prose: symbols, digit-symbol mixes."""
    found = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        core = token.strip(_EDGE_PUNCT)
        if not core or len(core) > 24 or _is_prose(core):
            continue
        offset = match.start() + token.index(core)
        found.append((primitive_root(core), offset, offset + len(core)))
    return found


def _is_prose(core: str) -> bool:
    inner = core.strip(_WRAPPERS)
    return (core in _PROSE_SYMBOLS or core.isalnum()  # "COVID19" is an odd word, not structure
            or any(p.fullmatch(inner) for p in (_PROSE_WORD, _NUMBER, _ABBREVIATION)))


def primitive_root(token: str) -> str:
    """The shortest unit a token repeats whole ("0-00-00-0" -> "0-0"); "**" stays apart from "*"."""
    n = len(token)
    for p in range(2, n // 2 + 1):
        if n % p == 0 and token[:p] * (n // p) == token:
            return token[:p]
    return token


class MotifTracker:
    """Counts motif tokens across samples and reports those seen in ≥ min_samples samples."""

    def __init__(self, min_samples: int = 3, max_tracked: int = 5000, max_ids: int = 20):
        self.min_samples = min_samples
        self.max_tracked = max_tracked  # least-seen motifs are forgotten beyond this
        self.max_ids = max_ids
        self.motifs: dict[str, Motif] = {}

    def feed(self, step: int, sample_id: str, text: str,
             loop_spans: Iterable[tuple[int, int]] = ()) -> list[Motif]:
        """Count one sample; returns the motifs that reached min_samples with this sample."""
        spans = sorted(loop_spans)
        newly = []
        for root, occurrences in _group(motif_tokens(text)).items():
            motif = self._count(root, step, sample_id, occurrences, spans)
            if not motif.reported and motif.samples >= self.min_samples:
                motif.reported = True
                newly.append(motif)
        self._forget()
        return newly

    def reported(self) -> list[Motif]:
        return sorted((m for m in self.motifs.values() if m.reported), key=lambda m: -m.samples)

    def _count(self, root, step, sample_id, occurrences, spans) -> Motif:
        motif = self.motifs.get(root) or Motif(root, step, step, 0, 0, [], 0)
        self.motifs[root] = motif
        motif.last_step = step
        motif.count += len(occurrences)
        motif.in_loop += sum(1 for start, end in occurrences if _inside(start, end, spans))
        if sample_id not in motif.sample_ids:
            motif.samples += 1
            if len(motif.sample_ids) < self.max_ids:
                motif.sample_ids.append(sample_id)
        return motif

    def _forget(self) -> None:
        if len(self.motifs) <= self.max_tracked:
            return
        keep = sorted(self.motifs.values(), key=lambda m: (m.reported, m.samples, m.last_step))
        for motif in keep[: len(self.motifs) - self.max_tracked]:
            del self.motifs[motif.text]

    def to_dict(self) -> dict:
        return {"min_samples": self.min_samples, "max_tracked": self.max_tracked,
                "max_ids": self.max_ids, "motifs": [msgspec.to_builtins(m) for m in self.motifs.values()]}

    @classmethod
    def from_dict(cls, state: dict) -> MotifTracker:
        tracker = cls(state["min_samples"], state["max_tracked"], state["max_ids"])
        for item in state["motifs"]:
            motif = msgspec.convert(item, Motif)
            tracker.motifs[motif.text] = motif
        return tracker


def _group(found: list[tuple[str, int, int]]) -> dict[str, list[tuple[int, int]]]:
    grouped: dict[str, list[tuple[int, int]]] = {}
    for root, start, end in found:
        grouped.setdefault(root, []).append((start, end))
    return grouped


def _inside(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(s <= start and end <= e for s, e in spans)
