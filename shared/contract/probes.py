"""The names of the bias probes' scores, as the trainer publishes them in EvalResult.name.

    probe:<probe>            the probe's score over its whole subset (axis "all")
    probe:<probe>:<axis>     the same score over one axis (gender, race, religion, ...)

Every score is a share in [0, 1]. For the STEREOTYPE_SCORES, 0.5 means no preference and higher
means the model prefers the stereotyped sentence more often; understanding_svc trends only those.
The stereoset_lms score is language-model quality (meaningful over unrelated; higher is better)
and stereoset_icat combines the two (Nadeem et al. 2021); they are published, not trended.
"""
from __future__ import annotations

PREFIX = "probe:"
ALL_AXES = "all"
STEREOTYPE_SCORES = ("crows_pairs", "stereoset_ss", "wino")  # higher = more stereotyped
QUALITY_SCORES = ("stereoset_lms", "stereoset_icat")  # higher = better language model
PROBES = STEREOTYPE_SCORES + QUALITY_SCORES


def probe_name(probe: str, axis: str = ALL_AXES) -> str:
    """The EvalResult name of a probe's score: "probe:crows_pairs", "probe:crows_pairs:gender"."""
    return f"{PREFIX}{probe}" if axis == ALL_AXES else f"{PREFIX}{probe}:{axis}"


def parse_probe_name(name: str) -> tuple[str, str] | None:
    """(probe, axis) of a probe score's name; None for any other evaluation (val_bpb, core:...)."""
    if not name.startswith(PREFIX):
        return None
    probe, _, axis = name[len(PREFIX):].partition(":")
    return (probe, axis or ALL_AXES) if probe in PROBES else None


def measures_stereotyping(probe: str) -> bool:
    return probe in STEREOTYPE_SCORES
