"""vector search by a per-process matrix on SQLite too: the sqlite-vec tables go

Revision ID: j1_vector_matrix
Revises: i2_generation_state
Create Date: 2026-12-03

On SQLite, vector search now ranks a matrix of `dataset_segments.vector` (as PostgreSQL
already did; app/services/dataset/vector_index.py says why), so the vec0 tables that g1
made per dimension, and the triggers that filled them, are dropped. The vectors
themselves stay where they always were, in `dataset_segments`: nothing is lost, and the
downgrade rebuilds the tables from them. Nothing changes on PostgreSQL.
"""

import sqlalchemy as sa
from alembic import op

revision = "j1_vector_matrix"
down_revision = "i2_generation_state"
branch_labels = None
depends_on = None

_VEC0_OBJECTS = (
    "SELECT name FROM sqlite_master WHERE type = :type AND name LIKE 'dataset_vectors_%'"
)


def upgrade():
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return
    for name in conn.scalars(sa.text(_VEC0_OBJECTS), {"type": "trigger"}).all():
        op.execute(f'DROP TRIGGER IF EXISTS "{name}"')
    virtual = _VEC0_OBJECTS + " AND sql LIKE 'CREATE VIRTUAL TABLE%'"
    # Dropping a virtual table drops its shadow tables with it (the module is loaded by
    # migrations/env.py for this).
    for name in conn.scalars(sa.text(virtual), {"type": "table"}).all():
        op.execute(f'DROP TABLE IF EXISTS "{name}"')


def downgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    # g1's own code makes the tables and triggers it made, and fills them from the rows.
    g1 = op.get_context().script.get_revision("g1_retrieval_indexes")
    g1.module._sqlite_vectors()
