"""Join the dataset, generation, mail and observability migrations into one head.

Revision ID: d0_merge_lanes
Revises: c3_dataset_lane, c4_generation_lane, c5_mail_lane, c6_observability_lane
Create Date: 2026-11-22 15:00:00

"""

revision = "d0_merge_lanes"
down_revision = ("c3_dataset_lane", "c4_generation_lane", "c5_mail_lane", "c6_observability_lane")
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
