"""Least privilege: the services stop connecting as the owner.

`introspect_writer` (journal_svc) may read every table and insert into the journal's, and update
`runs` (its upsert); not the operator's `prompts` and `run_prompts`, nor `alembic_version`.
`introspect_reader` (the web journal, selfplay_svc's prompt look-ups, the operator's queries) may
only read. The role that runs the migrations owns the tables and keeps DDL; default privileges give
the tables later migrations create the same grants.

Roles belong to the whole cluster, not to one database: several journals (and the tests' many
databases) share them, so they are created only when missing, with LOGIN and no password (the
`migrate` job or `up` gives them one: shared/role_passwords.py). The downgrade revokes this
schema's grants and drops a role only when no other database still grants it anything.

Revision ID: 0009
Revises: 0008
"""
from alembic import op

from shared.contract.db_roles import READER, WRITER

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

OPERATOR_TABLES = "prompts, run_prompts, alembic_version"  # the writer reads them, never writes


def create_role(role: str) -> str:
    # IF NOT EXISTS first, so an owner without CREATEROLE works once an admin made the roles; the
    # handler covers two migrations creating it at the same moment
    return f"""DO $$ BEGIN
                 IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                   CREATE ROLE {role} LOGIN;
                 END IF;
               EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
               END $$"""


def drop_role_if_unused(role: str) -> str:
    return f"""DO $$ BEGIN
                 DROP ROLE IF EXISTS {role};
               EXCEPTION WHEN dependent_objects_still_exist OR insufficient_privilege THEN
                 RAISE NOTICE 'role % kept: %', '{role}', SQLERRM;
               END $$"""


def schema() -> str:
    """This migration's schema (the tables are unqualified, so they live in current_schema())."""
    bind = op.get_bind()
    return bind.dialect.identifier_preparer.quote(bind.exec_driver_sql("SELECT current_schema()").scalar())


def upgrade() -> None:
    s = schema()
    for role in (WRITER, READER):
        op.execute(create_role(role))
    op.execute(f"REVOKE CREATE ON SCHEMA {s} FROM PUBLIC")  # before PostgreSQL 15 anyone could
    op.execute(f"GRANT USAGE ON SCHEMA {s} TO {WRITER}, {READER}")
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {READER}")
    # SELECT too: its staging tables are CREATE TEMP TABLE … (LIKE table), which needs it
    op.execute(f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA {s} TO {WRITER}")
    op.execute(f"REVOKE INSERT ON {OPERATOR_TABLES} FROM {WRITER}")
    op.execute(f"GRANT UPDATE ON runs TO {WRITER}")  # ON CONFLICT (run_id) DO UPDATE
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {WRITER}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT ON TABLES TO {READER}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT, INSERT ON TABLES TO {WRITER}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT USAGE, SELECT ON SEQUENCES TO {WRITER}")


def downgrade() -> None:
    s = schema()
    roles = f"{WRITER}, {READER}"
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} REVOKE ALL ON TABLES FROM {roles}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} REVOKE ALL ON SEQUENCES FROM {roles}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {roles}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {roles}")
    op.execute(f"REVOKE USAGE ON SCHEMA {s} FROM {roles}")
    for role in (WRITER, READER):
        op.execute(drop_role_if_unused(role))
    # CREATE on the schema stays revoked from PUBLIC: giving it back would reopen the hole
