"""The shipped reflection prompts are journal data from the start: `introspect prompt use` works
on a freshly migrated journal, before selfplay_svc ever ran (it used to store them when it
started). The texts come from selfplay_svc/prompts.py, their one source; a new version is a new
migration that names it, so a database's prompts follow from its revision.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

from selfplay_svc.prompts import SHIPPED_PROMPTS, word_count

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

VERSIONS = ("v1.3", "v1.4")


def upgrade() -> None:
    insert = sa.text("INSERT INTO prompts (version, text, word_count) VALUES (:version, :text, :words) "
                     "ON CONFLICT (version) DO NOTHING")  # selfplay_svc may have stored it already
    for version in VERSIONS:
        text = SHIPPED_PROMPTS[version]
        op.execute(insert.bindparams(version=version, text=text, words=word_count(text)))


def downgrade() -> None:
    pass  # the rows stay: before 0004 selfplay_svc stored the same ones, and runs may refer to them
