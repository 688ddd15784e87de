"""ledger: every attempt kept, leases, the outbox, invariants as constraints

Revision ID: f1_ledger
Revises: e1_notify_to
Create Date: 2026-12-01 21:00:00

Existing rows are carried over: a job's last known attempt becomes its first `job_attempts`
row, rows that would break an invariant are set right first (a finished job without a
finish time gets its last update time, a dangling parent or API key becomes NULL), and jobs
still `queued` enter the outbox, so the relay publishes any the old code left unpublished
(a duplicate message is harmless: a job starts only from queued or an expired lease).
Jobs still `started` get a lease that expires five minutes after the upgrade: stop the old
workers first; their jobs then run again as their next attempt.
"""

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision = "f1_ledger"
down_revision = "e1_notify_to"
branch_labels = None
depends_on = None

TERMINAL = "('succeeded', 'failed', 'cancelled')"
CHECKS = {
    "state_known": (
        "state IN ('queued', 'started', 'retrying', 'succeeded', 'failed', 'cancelled')"
    ),
    "attempts_positive": "attempts >= 0 AND max_attempts >= 1",
    "attempts_within_budget": "attempts <= max_attempts",
    "started_has_attempt_and_lease": (
        "state <> 'started' OR (attempts >= 1 AND started_at IS NOT NULL "
        "AND lease_expires_at IS NOT NULL)"
    ),
    "lease_only_while_started": (
        "state = 'started' OR (lease_owner IS NULL AND lease_expires_at IS NULL)"
    ),
    "finished_has_time": f"state NOT IN {TERMINAL} OR finished_at IS NOT NULL",
}


def upgrade():
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    lease_until = datetime.now(UTC) + timedelta(minutes=5)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("max_attempts", sa.Integer(), server_default="4", nullable=False)
        )
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=255), nullable=True))
        batch_op.add_column(
            sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))

    # Set right what the constraints below would refuse.
    op.execute(
        "UPDATE jobs SET parent_id = NULL WHERE parent_id IS NOT NULL "
        "AND parent_id NOT IN (SELECT id FROM jobs)"
    )
    op.execute(
        "UPDATE jobs SET api_key_id = NULL WHERE api_key_id IS NOT NULL "
        "AND api_key_id NOT IN (SELECT id FROM api_keys)"
    )
    op.execute(
        f"UPDATE jobs SET finished_at = updated_at WHERE state IN {TERMINAL} "
        "AND finished_at IS NULL"
    )
    op.execute(
        "UPDATE jobs SET attempts = CASE WHEN attempts < 1 THEN 1 ELSE attempts END, "
        "started_at = COALESCE(started_at, updated_at) WHERE state = 'started'"
    )
    op.execute("UPDATE jobs SET max_attempts = attempts WHERE attempts > max_attempts")
    op.execute("UPDATE jobs SET published_at = created_at WHERE state <> 'queued'")
    bind.execute(
        sa.text("UPDATE jobs SET lease_expires_at = :until WHERE state = 'started'"),
        {"until": lease_until},
    )

    # On SQLite the batch below copies `jobs` into a new table and drops the old one; with
    # foreign keys on, that drop fires ON DELETE SET NULL on the copy's parent_id.
    parents = (
        bind.execute(sa.text("SELECT id, parent_id FROM jobs WHERE parent_id IS NOT NULL")).all()
        if sqlite
        else []
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for name, condition in CHECKS.items():
            batch_op.create_check_constraint(batch_op.f(f"ck_jobs_{name}"), condition)
        batch_op.create_foreign_key(
            batch_op.f("fk_jobs_api_key_id_api_keys"),
            "api_keys",
            ["api_key_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_jobs_parent_id_jobs"), "jobs", ["parent_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_index(batch_op.f("ix_jobs_api_key_id"), ["api_key_id"], unique=False)
        batch_op.create_index(
            "ix_jobs_lease",
            ["lease_owner", "lease_expires_at"],
            unique=False,
            postgresql_where=sa.text("state = 'started'"),
            sqlite_where=sa.text("state = 'started'"),
        )
        batch_op.create_index(
            "ix_jobs_unpublished",
            ["updated_at"],
            unique=False,
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )
    if parents:
        bind.execute(
            sa.text("UPDATE jobs SET parent_id = :parent WHERE id = :id"),
            [{"id": row.id, "parent": row.parent_id} for row in parents],
        )

    op.create_table(
        "job_attempts",
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("error_type", sa.String(length=200), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "(outcome IS NULL) = (finished_at IS NULL)",
            name=op.f("ck_job_attempts_finished_has_outcome"),
        ),
        sa.CheckConstraint("number >= 1", name=op.f("ck_job_attempts_number_positive")),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_job_attempts_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "number", name=op.f("pk_job_attempts")),
    )
    # The last attempt of every job that ran is all the old schema knew of its attempts.
    op.execute(
        "INSERT INTO job_attempts "
        "(job_id, number, worker, started_at, finished_at, outcome, error_type, error_message) "
        "SELECT id, attempts, worker, COALESCE(started_at, created_at), "
        "CASE WHEN state = 'started' THEN NULL ELSE COALESCE(finished_at, updated_at) END, "
        "CASE WHEN state = 'started' THEN NULL "
        "WHEN state = 'queued' THEN CASE WHEN error_type IS NULL THEN 'cancelled' "
        "ELSE 'failed' END ELSE state END, "
        "error_type, error_message FROM jobs WHERE attempts >= 1"
    )


def downgrade():
    op.drop_table("job_attempts")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_unpublished")
        batch_op.drop_index("ix_jobs_lease")
        batch_op.drop_index(batch_op.f("ix_jobs_api_key_id"))
        batch_op.drop_constraint(batch_op.f("fk_jobs_parent_id_jobs"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_jobs_api_key_id_api_keys"), type_="foreignkey")
        for name in CHECKS:
            batch_op.drop_constraint(batch_op.f(f"ck_jobs_{name}"), type_="check")
        batch_op.drop_column("published_at")
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("lease_owner")
        batch_op.drop_column("max_attempts")
