"""lanes hold domain facts only: mails.state/attempts and documents.indexing_status go

A mail's state and attempts are its job's; a document's status is derived from its job
and the pipeline's own facts (error, completed_at, paused_at, resume_stage). What the
dropped columns knew that those facts do not is carried over first: a document's outcome
into its fact columns, a mail left unconfirmed into its newest send-log row. The
downgrade restores the columns from the same derivation the models use.

Revision ID: i1_lane_state
Revises: t1_projects
Create Date: 2026-12-02 02:40:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "i1_lane_state"
down_revision = "t1_projects"
branch_labels = None
depends_on = None

INDEX = "ix_dataset_documents_indexing_status"

# Each outcome keeps exactly its own fact, so the derivation gives the old status back.
DOCUMENT_FACTS = [
    "UPDATE dataset_documents SET error = COALESCE(error, 'indexing failed'), "
    "error_at = COALESCE(error_at, updated_at) WHERE indexing_status = 'error'",
    "UPDATE dataset_documents SET error = NULL WHERE indexing_status <> 'error'",
    "UPDATE dataset_documents SET completed_at = COALESCE(completed_at, updated_at), "
    "resume_stage = NULL WHERE indexing_status = 'completed'",
    "UPDATE dataset_documents SET completed_at = NULL WHERE indexing_status <> 'completed'",
    "UPDATE dataset_documents SET paused_at = COALESCE(paused_at, updated_at) "
    "WHERE indexing_status = 'paused'",
    "UPDATE dataset_documents SET paused_at = NULL WHERE indexing_status <> 'paused'",
    # A working stage is where the pipeline resumes.
    "UPDATE dataset_documents SET resume_stage = indexing_status "
    "WHERE indexing_status IN ('parsing', 'cleaning', 'splitting', 'indexing')",
]
MAIL_FACTS = [
    "UPDATE mail_sends SET outcome = 'unconfirmed' WHERE id IN (SELECT MAX(s.id) "
    "FROM mail_sends s JOIN mails m ON m.id = s.mail_id WHERE m.state = 'unconfirmed' "
    "AND NOT EXISTS (SELECT 1 FROM mail_sends u WHERE u.mail_id = m.id "
    "AND u.outcome = 'unconfirmed') GROUP BY s.mail_id)",
]

# app/models/dataset.py and app/models/mail.py as of this revision.
_JOB_STATE = "(SELECT state FROM jobs WHERE jobs.id = {table}.job_id)"
DOCUMENT_STATUS = f"""
UPDATE dataset_documents SET indexing_status = CASE
  WHEN error IS NOT NULL THEN 'error'
  WHEN completed_at IS NOT NULL AND resume_stage IS NULL THEN 'completed'
  WHEN paused_at IS NOT NULL THEN 'paused'
  WHEN {_JOB_STATE.format(table="dataset_documents")} IN ('failed', 'cancelled') THEN 'error'
  WHEN {_JOB_STATE.format(table="dataset_documents")} IN ('started', 'retrying')
    AND resume_stage IS NOT NULL THEN resume_stage
  ELSE 'waiting' END
"""
MAIL_STATE = """
UPDATE mails SET attempts = COALESCE((SELECT attempts FROM jobs WHERE jobs.id = mails.job_id), 0),
  state = CASE
  WHEN sent_at IS NOT NULL THEN 'sent'
  WHEN EXISTS (SELECT 1 FROM mail_sends s WHERE s.mail_id = mails.id
    AND s.outcome = 'unconfirmed') THEN 'unconfirmed'
  ELSE COALESCE((SELECT CASE state WHEN 'started' THEN 'sending' WHEN 'succeeded' THEN 'sent'
    ELSE state END FROM jobs WHERE jobs.id = mails.job_id), 'queued') END
"""


def upgrade():
    for statement in DOCUMENT_FACTS + MAIL_FACTS:
        op.execute(statement)
    op.drop_index(INDEX, table_name="dataset_documents")
    # A plain DROP COLUMN (SQLite 3.35+ has it too): a batch rebuild of dataset_documents on
    # SQLite would drop the table its segments and their index tables refer to ("database
    # table is locked"), and cascade deletes with foreign keys on.
    op.drop_column("dataset_documents", "indexing_status")
    op.drop_column("mails", "attempts")
    op.drop_column("mails", "state")


def _restore(table: str, column: str, type_: sa.types.TypeEngine, default: str) -> None:
    # Filled in below; the default only carries the NOT NULL over the existing rows.
    op.add_column(table, sa.Column(column, type_, nullable=False, server_default=default))


def downgrade():
    # The models' enums were VARCHAR(16) without a CHECK (native_enum=False): the same here.
    _restore("mails", "state", sa.String(length=16), "queued")
    _restore("mails", "attempts", sa.Integer(), "0")
    _restore("dataset_documents", "indexing_status", sa.String(length=16), "waiting")
    op.execute(MAIL_STATE)
    op.execute(DOCUMENT_STATUS)
    if op.get_bind().dialect.name != "sqlite":
        # SQLite keeps the defaults: dropping one rebuilds the table (see upgrade).
        op.alter_column("mails", "state", server_default=None)
        op.alter_column("mails", "attempts", server_default=None)
        op.alter_column("dataset_documents", "indexing_status", server_default=None)
    op.create_index(INDEX, "dataset_documents", ["indexing_status"], unique=False)
