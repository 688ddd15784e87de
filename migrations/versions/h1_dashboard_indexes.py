"""dashboard: indexes for the per-minute chart, the failure groups and newest-first pages

Revision ID: h1_dashboard_indexes
Revises: g1_retrieval_indexes
Create Date: 2026-12-01 21:00:00

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "h1_dashboard_indexes"
down_revision = "g1_retrieval_indexes"
branch_labels = None
depends_on = None

INDEXES = [
    ("ix_jobs_state_finished_at", "jobs", ["state", "finished_at"]),
    ("ix_jobs_state_task_error_type", "jobs", ["state", "task", "error_type", "finished_at"]),
    ("ix_dataset_documents_created_at_id", "dataset_documents", ["created_at", "id"]),
    ("ix_mails_created_at_id", "mails", ["created_at", "id"]),
    ("ix_generations_created_at_id", "generations", ["created_at", "id"]),
]


def upgrade():
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade():
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
