"""Indexes for the once-a-second clock and the recovery sweep.

The handoff clock reads waiting and held conversations every second and the recovery sweep
reads unanswered messages every 30 s; without these they scan whole tables that only grow.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UNANSWERED = sa.text("direction = 'in' AND processed_at IS NULL")


def upgrade() -> None:
    """Conversations by mode (in queue order); unanswered messages as a partial index."""
    op.create_index(
        "ix_conversations_mode", "conversations", ["mode", "risk_level", "waiting_since"]
    )
    op.create_index(
        "ix_messages_unanswered",
        "messages",
        ["created_at"],
        sqlite_where=UNANSWERED,
        postgresql_where=UNANSWERED,
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_messages_unanswered", table_name="messages")
    op.drop_index("ix_conversations_mode", table_name="conversations")
