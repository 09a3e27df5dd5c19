"""Pauses say why and where: `pauses` gains the pause's note, the step the trainer applied it at
and `why` (the person's reason, else their note, else the detection's summary).

A person's pause is sent from the CLI with step -1 (it does not know the trainer's step); the
trainer's answer (a Status naming the command, schema 4) carries the step it paused at, so
`statuses` now keeps `command_id` and `outcome` (earlier rows are filled from the `events` table,
which keeps every status whole) and the view takes the step from there.

A prompt change is now journaled with the run's step (selfplay_svc/prompt_store.py); the ones
journaled before with step -1 get the run's last step at their time, from `steps`.

Revision ID: 0011_pause_reasons
Revises: 0010_bias_probes
"""
from alembic import op

revision = "0011_pause_reasons"
down_revision = "0010_bias_probes"
branch_labels = None
depends_on = None

PAUSES = """
    SELECT p.event_id, p.run_id, coalesce(a.step, p.step) AS step, p.ts, p.reason, p.who, p.detection_id,
           d.detector, d.severity, d.summary,
           r.ts AS resumed_at, r.who AS resumed_by, r.note AS resume_note,
           p.note, p.step AS sent_at_step, a.outcome,
           coalesce(nullif(p.reason, ''), nullif(p.note, ''), d.summary) AS why
    FROM commands p
    LEFT JOIN detections d ON d.event_id = p.detection_id
    LEFT JOIN LATERAL (SELECT step, outcome FROM statuses s WHERE s.command_id = p.event_id
                       ORDER BY s.ts LIMIT 1) a ON true
    LEFT JOIN LATERAL (SELECT * FROM commands r WHERE r.run_id = p.run_id
                       AND r.action = 'resume' AND r.ts >= p.ts ORDER BY r.ts LIMIT 1) r ON true
    WHERE p.action = 'pause'"""

PAUSES_0001 = """
    SELECT p.event_id, p.run_id, p.step, p.ts, p.reason, p.who, p.detection_id,
           d.detector, d.severity, d.summary,
           r.ts AS resumed_at, r.who AS resumed_by, r.note AS resume_note
    FROM commands p
    LEFT JOIN detections d ON d.event_id = p.detection_id
    LEFT JOIN LATERAL (SELECT * FROM commands r WHERE r.run_id = p.run_id
                       AND r.action = 'resume' AND r.ts >= p.ts ORDER BY r.ts LIMIT 1) r ON true
    WHERE p.action = 'pause'"""


def upgrade() -> None:
    op.execute("ALTER TABLE statuses ADD COLUMN command_id text, ADD COLUMN outcome text")
    op.execute("""UPDATE statuses s SET command_id = nullif(e.payload->>'command_id', ''),
                  outcome = nullif(e.payload->>'outcome', '')
                  FROM events e WHERE e.event_id = s.event_id AND e.kind = 'status'""")
    op.execute("CREATE INDEX statuses_command ON statuses (command_id)")
    op.execute("""UPDATE journal_entries j SET step = coalesce(
                    (SELECT max(s.step) FROM steps s WHERE s.run_id = j.run_id AND s.ts <= j.ts), -1)
                  WHERE j.entry_type = 'prompt_change' AND j.step = -1""")
    op.execute("DROP VIEW pauses")  # columns are added in the middle: replace, not CREATE OR REPLACE
    op.execute(f"CREATE VIEW pauses AS {PAUSES}")


def downgrade() -> None:
    op.execute("DROP VIEW pauses")
    op.execute(f"CREATE VIEW pauses AS {PAUSES_0001}")
    op.execute("DROP INDEX statuses_command")
    op.execute("ALTER TABLE statuses DROP COLUMN command_id, DROP COLUMN outcome")
