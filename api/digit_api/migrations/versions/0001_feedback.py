"""The feedback table: people's verdicts on the model's answers.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(16), primary_key=True, comment="sha256 of label and pixels, first 16 hex digits"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("label", sa.SmallInteger, nullable=False, comment="the digit the person says it is"),
        sa.Column("prediction", sa.SmallInteger, nullable=False, comment="the model's answer on these pixels"),
        sa.Column("probabilities", sa.JSON, nullable=False, comment="the model's probabilities, one per label"),
        sa.Column("pixels", sa.LargeBinary(784), nullable=False, comment="784 uint8, row-major 28x28, 255 = ink"),
        sa.Column("request_id", sa.String(128), nullable=True, comment="X-Request-Id of the prediction, if sent"),
    )
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])
    op.create_index("ix_feedback_model_version", "feedback", ["model_version"])


def downgrade() -> None:
    op.drop_table("feedback")
