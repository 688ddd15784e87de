"""observability lane: trace id and Sentry event id on the job ledger

Revision ID: c6_observability_lane
Revises: a190573c3e91
Create Date: 2026-11-22 14:05:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c6_observability_lane"
down_revision = "a190573c3e91"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trace_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("sentry_event_id", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_trace_id"), ["trace_id"], unique=False)


def downgrade():
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_trace_id"))
        batch_op.drop_column("sentry_event_id")
        batch_op.drop_column("trace_id")
