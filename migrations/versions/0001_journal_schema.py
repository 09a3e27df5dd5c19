"""The journal schema: one table per event kind, keyed on event_id, plus views for common questions.

Revision ID: 0001
Revises:
"""
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Every event table starts with these columns; event_id makes every write idempotent.
BASE = """event_id text PRIMARY KEY, run_id text NOT NULL, step bigint NOT NULL,
          ts timestamptz NOT NULL"""

TABLES = {
    "events": "kind text NOT NULL, subject text NOT NULL, payload jsonb NOT NULL",
    "steps": """loss float8, loss_smooth float8, lr float8, grad_norm float8, tokens_per_s float8,
                step_time_s float8, mfu float8, tokens_seen bigint, data_mix jsonb,
                publish_lag_s float8, queue_depth int""",
    "samples": """prompt text, text text, mode text, temperature float8, top_k int, seed bigint,
                  max_new_tokens int""",
    "evals": "name text NOT NULL, value float8, details jsonb",
    "checkpoints": "object_name text, size bigint, sha256 text, local_path text, reason text",
    "statuses": "state text NOT NULL, reason text, detail jsonb",
    "mixes": "weights jsonb, reason text",
    "detections": """detector text NOT NULL, severity text NOT NULL, source_event_id text,
                     source_subject text, span_start int, span_end int, summary text, details jsonb""",
    "health": "status text, focus text, norms float8[], notes text[]",
    "shimmer": "per_layer float8[], mean float8",
    "concepts": "feature text NOT NULL, tier text NOT NULL, score float8, first_step bigint, details jsonb",
    "reflections": """text text, prompt_version text, prompt text, checkpoint text,
                      checkpoint_sha256 text, sampling jsonb, scores jsonb, supportive boolean""",
    "journal_entries": """author text NOT NULL, entry_type text NOT NULL, title text, body text,
                          who text, conversation_id text, refs jsonb""",
    "conversations": """conversation_id text NOT NULL, question_event_id text, question text,
                        answer text, checkpoint text, checkpoint_sha256 text""",
    "commands": """action text NOT NULL, reason text, who text, note text, detection_id text,
                   params jsonb""",
}

VIEWS = {
    "loss_by_step": """
        SELECT s.run_id, s.step, s.loss, s.loss_smooth, s.lr, s.tokens_per_s, s.mfu,
               (SELECT e.value FROM evals e WHERE e.run_id = s.run_id AND e.name = 'val_bpb'
                  AND e.step <= s.step ORDER BY e.step DESC LIMIT 1) AS val_bpb
        FROM steps s""",
    "pauses": """
        SELECT p.event_id, p.run_id, p.step, p.ts, p.reason, p.who, p.detection_id,
               d.detector, d.severity, d.summary,
               r.ts AS resumed_at, r.who AS resumed_by, r.note AS resume_note
        FROM commands p
        LEFT JOIN detections d ON d.event_id = p.detection_id
        LEFT JOIN LATERAL (SELECT * FROM commands r WHERE r.run_id = p.run_id
                           AND r.action = 'resume' AND r.ts >= p.ts ORDER BY r.ts LIMIT 1) r ON true
        WHERE p.action = 'pause'""",
    "model_writing": """
        SELECT run_id, step, ts, 'sample' AS source, text, NULL AS prompt_version FROM samples
        UNION ALL
        SELECT run_id, step, ts, 'reflection', text, prompt_version FROM reflections
        UNION ALL
        SELECT run_id, step, ts, 'reply', answer, NULL FROM conversations""",
    "written_after_last_pause": """
        SELECT w.* FROM model_writing w
        JOIN (SELECT run_id, max(ts) AS paused_at FROM commands WHERE action = 'pause'
              GROUP BY run_id) p ON p.run_id = w.run_id
        WHERE w.ts >= p.paused_at""",
    "journal_timeline": """
        SELECT run_id, step, ts, author, entry_type AS kind, title, body FROM journal_entries
        UNION ALL
        SELECT run_id, step, ts, 'model', 'reflection', prompt_version, text FROM reflections
        UNION ALL
        SELECT run_id, step, ts, 'system', 'detection', detector || ' ' || severity, summary
        FROM detections
        UNION ALL
        SELECT run_id, step, ts, coalesce(nullif(who, ''), 'system'), 'command', action,
               concat_ws(' ', reason, note) FROM commands""",
    "latest_health": """
        SELECT DISTINCT ON (run_id) run_id, step, ts, status, focus, norms, notes
        FROM health ORDER BY run_id, step DESC, ts DESC""",
    "concept_tiers": """
        SELECT DISTINCT ON (run_id, feature) run_id, feature, tier, score, first_step, step
        FROM concepts ORDER BY run_id, feature, step DESC, ts DESC""",
}


def upgrade() -> None:
    op.execute("""CREATE TABLE runs (run_id text PRIMARY KEY, first_seen timestamptz NOT NULL,
                  last_seen timestamptz NOT NULL, last_step bigint NOT NULL DEFAULT 0, state text)""")
    for table, columns in TABLES.items():
        op.execute(f"CREATE TABLE {table} ({BASE}, {columns})")
        op.execute(f"CREATE INDEX {table}_run_step ON {table} (run_id, step)")
    op.execute("""CREATE TABLE activations (event_id text NOT NULL, run_id text NOT NULL,
                  step bigint NOT NULL, ts timestamptz NOT NULL, layer int NOT NULL, name text NOT NULL,
                  rms float8, mean float8, std float8, max_abs float8, max_channel int,
                  dead_frac float8, PRIMARY KEY (event_id, name))""")
    op.execute("CREATE INDEX activations_run_step ON activations (run_id, step)")
    op.execute("CREATE INDEX events_kind ON events (kind)")
    op.execute("CREATE INDEX conversations_id ON conversations (conversation_id)")
    op.execute("""CREATE TABLE prompts (version text PRIMARY KEY, text text NOT NULL,
                  word_count int NOT NULL, created_at timestamptz NOT NULL DEFAULT now())""")
    op.execute("""CREATE TABLE run_prompts (run_id text PRIMARY KEY,
                  version text NOT NULL REFERENCES prompts (version),
                  set_at timestamptz NOT NULL DEFAULT now(), who text)""")
    for view, sql in VIEWS.items():
        op.execute(f"CREATE VIEW {view} AS {sql}")
    op.execute("""CREATE FUNCTION detections_around(p_run text, p_step bigint, p_radius bigint DEFAULT 500)
                  RETURNS SETOF detections LANGUAGE sql STABLE AS $$
                    SELECT * FROM detections WHERE run_id = p_run
                      AND step BETWEEN p_step - p_radius AND p_step + p_radius ORDER BY step, ts $$""")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS detections_around(text, bigint, bigint)")
    for view in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    op.execute("DROP TABLE IF EXISTS run_prompts")
    op.execute("DROP TABLE IF EXISTS prompts")
    op.execute("DROP TABLE IF EXISTS activations")
    for table in reversed(list(TABLES)):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP TABLE IF EXISTS runs")
