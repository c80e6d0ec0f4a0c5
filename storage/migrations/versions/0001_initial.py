"""Initial tables: conversations, messages, events, leads, kv.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the foundation tables."""
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("reporter_id", sa.String(64), nullable=False),
        sa.Column("address_enc", sa.LargeBinary, nullable=False),
        sa.Column("token_digest", sa.String(64)),
        sa.Column("script_id", sa.String(64), nullable=False),
        sa.Column("script_lang", sa.String(16), nullable=False),
        sa.Column("script_version", sa.String(64), nullable=False),
        sa.Column("state", sa.String(64), nullable=False),
        sa.Column("slots_enc", sa.LargeBinary, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("risk_level", sa.Integer, nullable=False),
        sa.Column("categories", sa.JSON, nullable=False),
        sa.Column("flags", sa.JSON, nullable=False),
        sa.Column("assigned_to", sa.Integer),
        sa.Column("waiting_since", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("last_inbound_at", TS),
        sa.Column("closed_at", TS),
    )
    op.create_index("ix_conversations_reporter_id", "conversations", ["reporter_id"])
    op.create_index("ix_conversations_assigned_to", "conversations", ["assigned_to"])
    op.create_index(
        "ix_conversations_channel_reporter", "conversations", ["channel", "reporter_id"]
    )
    op.create_table(
        "messages",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), nullable=False
        ),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("channel_message_id", sa.String(128)),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("body_enc", sa.LargeBinary, nullable=False),
        sa.Column("risk_level", sa.Integer),
        sa.Column("categories", sa.JSON),
        sa.Column("assessment_enc", sa.LargeBinary),
        sa.Column("in_reply_to", BigId),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("processed_at", TS),
        sa.Column("delivered_at", TS),
        sa.UniqueConstraint("channel", "channel_message_id", name="uq_messages_channel_msgid"),
    )
    op.create_index("ix_messages_conversation_id", "messages", ["conversation_id"])
    op.create_index("ix_messages_in_reply_to", "messages", ["in_reply_to"])
    op.create_table(
        "events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("conversation_id", sa.String(32)),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_events_conversation_id", "events", ["conversation_id"])
    op.create_table(
        "leads",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("code", sa.String(32), nullable=False, unique=True),
        sa.Column(
            "conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), nullable=False
        ),
        sa.Column("category", sa.String(32)),
        sa.Column("risk_level", sa.Integer, nullable=False),
        sa.Column("summary_enc", sa.LargeBinary),
        sa.Column("district_enc", sa.LargeBinary),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_leads_conversation_id", "leads", ["conversation_id"])
    op.create_table(
        "kv",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.String(2000), nullable=False),
        sa.Column("expires_at", TS),
    )


def downgrade() -> None:
    """Drop everything."""
    for table in ("kv", "leads", "events", "messages", "conversations"):
        op.drop_table(table)
