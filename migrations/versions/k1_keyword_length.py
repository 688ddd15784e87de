"""keyword search on PostgreSQL: an index of each segment's lexeme count per dataset

Revision ID: k1_keyword_length
Revises: j1_vector_matrix
Create Date: 2026-12-04

PostgreSQL's keyword search ranks the segments that match two or more query terms first,
then only those single-term matches short enough to outrank them
(app/services/dataset/keyword_index.py says why this is exact). This index finds the
short ones of a dataset without visiting the rest. Nothing changes on SQLite.

Building it reads every segment's tsvector once and blocks writes to dataset_segments
meanwhile (about a second per 250k segments here).
"""

from alembic import op

revision = "k1_keyword_length"
down_revision = "j1_vector_matrix"
branch_labels = None
depends_on = None

# The name starts with "search_vector" after the table prefix, so the model's
# include_name keeps autogenerate away from it, as from the GIN index.
INDEX = "ix_dataset_segments_search_vector_length"


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE INDEX {INDEX} ON dataset_segments (dataset_id, length(search_vector))")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
