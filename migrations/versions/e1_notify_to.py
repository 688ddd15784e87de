"""job_finished mail on request: notify_to on jobs and on upload batches

Revision ID: e1_notify_to
Revises: d0_merge_lanes
Create Date: 2026-11-23 10:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "e1_notify_to"
down_revision = "d0_merge_lanes"
branch_labels = None
depends_on = None


def upgrade():
    # Nullable with no default: PostgreSQL adds the column without rewriting the table.
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notify_to", sa.JSON(), nullable=True))
    with op.batch_alter_table("dataset_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notify_to", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("dataset_batches", schema=None) as batch_op:
        batch_op.drop_column("notify_to")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("notify_to")
