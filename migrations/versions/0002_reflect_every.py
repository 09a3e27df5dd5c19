"""Per-run self-play schedule: `run_prompts.reflect_every` (NULL = the service default), and a
run may set its schedule without choosing a prompt version.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE run_prompts ADD COLUMN reflect_every int CHECK (reflect_every > 0)")
    op.execute("ALTER TABLE run_prompts ALTER COLUMN version DROP NOT NULL")


def downgrade() -> None:
    op.execute("DELETE FROM run_prompts WHERE version IS NULL")
    op.execute("ALTER TABLE run_prompts ALTER COLUMN version SET NOT NULL")
    op.execute("ALTER TABLE run_prompts DROP COLUMN reflect_every")
