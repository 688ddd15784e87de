"""generations.status removed: where a generation's work is comes from its job

The column was a second state machine beside the job's (issue 10): the API now derives a
generation's status from its job's state. Downgrade restores the column, filled from the
jobs, so a downgraded API reads what it read before.

Revision ID: i2_generation_state
Revises: i1_lane_state
Create Date: 2026-12-02 02:40:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "i2_generation_state"
down_revision = "i1_lane_state"
branch_labels = None
depends_on = None

# app.models.generation.STATUS_BY_JOB_STATE as of this revision (a migration never imports
# app code).
STATUS_BY_JOB_STATE = {
    "queued": "pending",
    "started": "streaming",
    "retrying": "retrying",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}


def upgrade() -> None:
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_column("status")


def downgrade() -> None:
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="pending")
        )
    cases = " ".join(f"WHEN '{job}' THEN '{gen}'" for job, gen in STATUS_BY_JOB_STATE.items())
    # A row whose job is gone or not yet submitted stays `pending`.
    op.execute(
        "UPDATE generations SET status = COALESCE((SELECT CASE jobs.state "
        f"{cases} END FROM jobs WHERE jobs.id = generations.job_id), 'pending')"
    )
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.alter_column("status", server_default=None)
