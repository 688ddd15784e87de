"""projects and scoped keys: api_keys.project_id and scopes, jobs and datasets in a project

Every existing key moves into the project `default` with every scope but admin, and every
existing job and dataset into the same project, so existing keys keep seeing what they saw.

Revision ID: t1_projects
Revises: h1_dashboard_indexes
Create Date: 2026-12-01 21:00:00

"""

from datetime import UTC
from datetime import datetime

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "t1_projects"
down_revision = "h1_dashboard_indexes"
branch_labels = None
depends_on = None

DEFAULT_PROJECT = "default"
# app.services.tenancy.DEFAULT_SCOPES as of this revision (a migration never imports app code).
DEFAULT_SCOPES = [
    "jobs:read",
    "jobs:write",
    "datasets:read",
    "datasets:write",
    "generations:read",
    "generations:write",
    "mail:read",
    "mail:write",
    "traces:read",
]

projects = sa.table(
    "projects",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
api_keys = sa.table("api_keys", sa.column("project_id", sa.Integer), sa.column("scopes", sa.JSON))


def _add_project_column(table: str, sqlite: bool) -> None:
    column = sa.Column(
        "project_id",
        sa.Integer(),
        sa.ForeignKey("projects.id", name=f"fk_{table}_project_id_projects"),
        nullable=True,
    )
    if sqlite:
        # Inline REFERENCES instead of batch mode: batch mode copies the table and drops the
        # old one, and with foreign keys on, dropping `datasets` would cascade to documents.
        op.add_column(table, column, inline_references=True)
    else:
        op.add_column(table, column)


def upgrade():
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )
    bind.execute(projects.insert().values(name=DEFAULT_PROJECT, created_at=datetime.now(UTC)))
    default_id = bind.scalar(sa.select(projects.c.id).where(projects.c.name == DEFAULT_PROJECT))

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("scopes", sa.JSON(), nullable=True))
    bind.execute(api_keys.update().values(project_id=default_id, scopes=DEFAULT_SCOPES))
    # api_keys is small: batch mode (a table copy on SQLite) is cheap, and nothing refers to it.
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.alter_column("project_id", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("scopes", existing_type=sa.JSON(), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_api_keys_project_id_projects"), "projects", ["project_id"], ["id"]
        )

    for table in ("jobs", "datasets"):
        _add_project_column(table, sqlite)
        op.execute(
            sa.table(table, sa.column("project_id", sa.Integer))
            .update()
            .values(project_id=default_id)
        )
    op.create_index("ix_jobs_project_id_created_at_id", "jobs", ["project_id", "created_at", "id"])
    op.create_index(op.f("ix_datasets_project_id"), "datasets", ["project_id"])


def downgrade():
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # Batch mode copies a table and drops the old one; with foreign keys on, dropping
        # `datasets` would cascade to its documents. pysqlite opens the transaction only at
        # the first write, so the pragma still applies here.
        op.execute("PRAGMA foreign_keys=OFF")
    op.drop_index(op.f("ix_datasets_project_id"), table_name="datasets")
    op.drop_index("ix_jobs_project_id_created_at_id", table_name="jobs")
    for table in ("datasets", "jobs"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            if not sqlite:
                # On SQLite the reference was inline and unnamed; the copy leaves it out.
                batch_op.drop_constraint(f"fk_{table}_project_id_projects", type_="foreignkey")
            batch_op.drop_column("project_id")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_api_keys_project_id_projects"), type_="foreignkey")
        batch_op.drop_column("scopes")
        batch_op.drop_column("project_id")
    op.drop_table("projects")
    if sqlite:
        op.execute("PRAGMA foreign_keys=ON")
