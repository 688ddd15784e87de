"""jobs: drop ix_jobs_state, a prefix of ix_jobs_state_finished_at

Revision ID: l1_jobs_state_index
Revises: k1_keyword_length
Create Date: 2026-12-07

Every transition of a job changes its state, so every index of `jobs` gets a new entry per
transition (no HOT update is possible): each index costs every job on every write. A
lookup by state alone is served as well by (state, finished_at), which begins with it.
"""

from alembic import op

revision = "l1_jobs_state_index"
down_revision = "k1_keyword_length"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_index("ix_jobs_state")


def downgrade():
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.create_index("ix_jobs_state", ["state"], unique=False)
