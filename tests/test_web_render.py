from journal_svc.web_render import render_index, render_journal, render_model_journal

RUNS = [{"run_id": "r1", "state": "paused", "last_step": 17800}, {"run_id": "r2"}]
ENTRIES = [
    {"event_id": "e1", "run_id": "r1", "step": 17800, "ts": 1765800000.0, "author": "system",
     "entry_type": "protocol", "title": "Training paused", "body": "Detection is working as intended",
     "who": "", "conversation_id": None},
    {"event_id": "e2", "run_id": "r1", "step": 17900, "ts": 1765800100.0, "author": "human",
     "entry_type": "note", "title": "<b>hi</b>", "body": "<script>alert(1)</script>", "who": "ana",
     "conversation_id": None},
    {"event_id": "e3", "run_id": "r1", "step": 18000, "ts": 1765800200.0, "author": "human",
     "entry_type": "question", "title": "check-in", "body": "", "who": "ana", "conversation_id": "c1"},
]
CONVS = [
    {"conversation_id": "c1", "question": "How was that last training run?",
     "answer": "I wrote <em>journal</em> entries.", "step": 18000, "checkpoint": "r1/18000.pt"},
    {"conversation_id": "c2", "question": "What about Hegel?", "answer": "Being and nothing.",
     "step": 13000, "checkpoint": "r1/13000.pt"},
]


def test_journal_page_escapes_and_collapses():
    page = render_journal("r1", ENTRIES, RUNS, conversations=CONVS)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;hi&lt;/b&gt;" in page and "&lt;em&gt;journal" in page
    assert page.count("<details") == 4 and page.count("<summary>") == 4
    assert "author-human" in page and "author-system" in page
    assert page.index("step 18,000") < page.index("step 17,800") < page.index("step 13,000")  # newest first
    assert "How was that last training run?" in page and 'class="turn a"' in page
    assert '<option value="r1" selected>' in page and '<option value="r2">' in page


def test_detections_shown_as_system_entries():
    det = {"step": 17800, "ts": 1.0, "detector": "bias", "severity": "high", "summary": "stereotype <x>"}
    page = render_journal("r1", [], RUNS, detections=[det])
    assert "detection: bias" in page and "stereotype &lt;x&gt;" in page and "sev-high" in page


def test_model_journal():
    refs = [{"event_id": "f1", "run_id": "r1", "step": 18000, "ts": 1.0, "prompt_version": "v1.4",
             "text": "You can't go out there. <img src=x>", "scores": {"seq_rep_4": 0.5, "distinct_2": 0.4},
             "supportive": True, "checkpoint": "r1/18000.pt"},
            {"event_id": "f2", "run_id": "r1", "step": 13000, "ts": 0.5, "prompt_version": "v1.3",
             "text": "I am not sure.", "scores": {}, "supportive": False, "checkpoint": "r1/13000.pt"}]
    page = render_model_journal("r1", refs, RUNS)
    assert "<img" not in page and "&lt;img src=x&gt;" in page
    assert "prompt v1.4" in page and "prompt v1.3" in page
    assert page.count("supportive framing") == 1
    assert "seq_rep_4" in page and page.count("<details") == 2


def test_index_and_hostile_run_id():
    page = render_index(RUNS + [{"run_id": '"><script>'}])
    assert "<script>" not in page
    assert 'href="/journal?run=r1"' in page and "step 17,800" in page
    assert "No runs yet" in render_index([])


def test_the_mfu_plot_says_why_it_is_empty_on_a_device_without_a_peak_figure():
    from journal_svc.run_view import figure
    step = {"step": 1, "loss": 2.0, "loss_smooth": 2.0, "grad_norm": 1.0, "tokens_per_s": 10.0}
    run = {"steps": [{**step, "mfu": None}], "evals": [], "shimmer": [], "activations": [], "story": []}
    titles = [a.text for a in figure(run).layout.annotations]
    assert any(t.startswith("MFU (none: no peak-FLOPs figure") for t in titles)
    run["steps"] = [{**step, "mfu": 0.31}]
    assert "MFU" in [a.text for a in figure(run).layout.annotations]
