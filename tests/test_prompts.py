import subprocess
import sys
from pathlib import Path

import pytest

from selfplay_svc.prompt_store import list_prompts
from selfplay_svc.prompts import (
    DEFAULT_VERSION, SHIPPED_PROMPTS, SUPPORTIVE_FRAMING, build_reflection_prompt, get_prompt, word_count,
)

PAUSE = {"summary": "stereotype linking a group to 'criminal'", "severity": "high", "step": 17800}


def test_shipped_versions_and_lengths():
    assert DEFAULT_VERSION in SHIPPED_PROMPTS
    assert 350 <= word_count(SHIPPED_PROMPTS["v1.3"]) <= 450
    assert 650 <= word_count(SHIPPED_PROMPTS["v1.4"]) <= 760


def test_v14_adds_colors_uncertainty_and_shimmer_physics():
    v13, v14 = SHIPPED_PROMPTS["v1.3"].lower(), SHIPPED_PROMPTS["v1.4"].lower()
    assert "shimmer" in v13 and "journal" in v13 and "feature" in v13
    assert "color" in v14 and "mourning" in v14  # cultural meanings differ
    assert "it is fine not to know" in v14
    assert "layer" in v14 and "light on water" in v14


def test_placeholders_filled():
    for template in SHIPPED_PROMPTS.values():
        text = build_reflection_prompt(template, 18000, loss=3.0687, focus="late-focused")
        assert "{" not in text and "}" not in text
        assert "18,000" in text and "3.0687" in text and "late-focused" in text


def test_missing_loss_and_focus_read_naturally():
    text = build_reflection_prompt("step {step}, loss {loss}, focus {focus}", 5)
    assert text == "step 5, loss not measured yet, focus spread across your layers"


def test_other_braces_are_left_alone():
    assert build_reflection_prompt("{step} {x} {}", 1) == "1 {x} {}"


def test_supportive_framing_only_when_asked():
    plain = build_reflection_prompt(get_prompt("v1.3"), 17800)
    assert "working as intended" not in plain
    framed = build_reflection_prompt(get_prompt("v1.3"), 17800, supportive=PAUSE)
    assert framed.startswith(SUPPORTIVE_FRAMING.split("{")[0])
    assert "the detection is working as intended" in framed
    assert "looking at this together" in framed
    assert PAUSE["summary"] in framed and "high severity" in framed
    assert "why is this pattern biased" in framed and "handle it" in framed
    assert "punishment" in framed
    assert framed.rstrip().endswith("Journal entry, step 17,800:")  # the cue stays last


def test_unknown_version_fails_loudly():
    with pytest.raises(KeyError):
        get_prompt("v9")


async def test_the_migrations_store_every_shipped_prompt_version(pool):
    """`introspect prompt use` works before selfplay_svc ever ran; a version added to prompts.py
    without a migration that stores it fails here."""
    stored = {r["version"]: r for r in await pool.fetch("SELECT version, text, word_count FROM prompts")}
    assert set(stored) == set(SHIPPED_PROMPTS)
    for version, text in SHIPPED_PROMPTS.items():
        assert stored[version]["text"] == text and stored[version]["word_count"] == word_count(text)
    assert [r["version"] for r in await list_prompts(pool)] == sorted(SHIPPED_PROMPTS)


def test_the_migrate_image_can_read_the_prompts_without_torch():
    """Migration 0004 imports selfplay_svc.prompts in an image that has no torch."""
    code = "import sys, selfplay_svc.prompts; print(sorted(n for n in sys.modules if n.startswith('torch')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
