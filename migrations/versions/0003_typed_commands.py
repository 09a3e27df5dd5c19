"""Commands carry typed arguments: `commands.params` becomes `commands.args` (the command's order,
one typed struct per action, as JSON); `detection_id` stays a column, filled from a pause's cause.

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE commands RENAME COLUMN params TO args")


def downgrade() -> None:
    op.execute("ALTER TABLE commands RENAME COLUMN args TO params")
