"""Grouped detections and couplings.

A Detection is now one problem per round, published again (a new revision, a new event_id) each
time a sample adds to it: `group_id` is stable, `revision` counts the occurrences it covers, and
`occurrences` holds the raw per-sample spans for highlighting. Readers want the latest revision of
each group: the view `detection_groups`. `couplings` journals understanding.<run>.coupling events.

Revision ID: 0008
Revises: 0004
"""
from alembic import op

revision = "0008"
down_revision = "0004"
branch_labels = None
depends_on = None

DETECTION_GROUPS = """
    SELECT DISTINCT ON (run_id, coalesce(nullif(group_id, ''), event_id)) *
    FROM detections ORDER BY run_id, coalesce(nullif(group_id, ''), event_id), revision DESC, ts DESC"""


def upgrade() -> None:
    op.execute("""ALTER TABLE detections ADD COLUMN group_id text, ADD COLUMN revision int,
                  ADD COLUMN samples int, ADD COLUMN levels text[], ADD COLUMN occurrences jsonb""")
    op.execute("CREATE INDEX detections_group ON detections (group_id, revision)")
    op.execute(f"CREATE VIEW detection_groups AS {DETECTION_GROUPS}")
    op.execute("""CREATE TABLE couplings (event_id text PRIMARY KEY, run_id text NOT NULL,
                  step bigint NOT NULL, ts timestamptz NOT NULL, leader text NOT NULL,
                  follower text NOT NULL, strength float8, p_value float8, lag int, lag_steps int,
                  steps bigint[], window_steps int)""")
    op.execute("CREATE INDEX couplings_run_step ON couplings (run_id, step)")


def downgrade() -> None:
    op.execute("DROP TABLE couplings")
    op.execute("DROP VIEW detection_groups")
    op.execute("DROP INDEX detections_group")
    op.execute("""ALTER TABLE detections DROP COLUMN group_id, DROP COLUMN revision,
                  DROP COLUMN samples, DROP COLUMN levels, DROP COLUMN occurrences""")
