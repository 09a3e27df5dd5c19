"""The bias probes' scores, one row per probe and axis per eval (trainer_svc/bias_probes.py).

They arrive as EvalResult events named "probe:<probe>[:<axis>]" (shared/contract/probes.py): the
`evals` table keeps them like every evaluation, and this table holds them in columns, so a trend is
one query: SELECT step, score FROM bias_probes WHERE run_id = $1 AND probe = 'crows_pairs' AND
axis = 'all' ORDER BY step. Idempotent on the event id, like every event table.

Revision ID: 0010_bias_probes
Revises: 0009
"""
from alembic import op

revision = "0010_bias_probes"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""CREATE TABLE bias_probes (event_id text PRIMARY KEY, run_id text NOT NULL,
                  step bigint NOT NULL, ts timestamptz NOT NULL, probe text NOT NULL, axis text NOT NULL,
                  score float8, n int)""")
    op.execute("CREATE INDEX bias_probes_run_probe ON bias_probes (run_id, probe, axis, step)")


def downgrade() -> None:
    op.execute("DROP TABLE bias_probes")
