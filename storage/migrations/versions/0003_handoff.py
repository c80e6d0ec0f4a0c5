"""Live handoff: presence, notes, hit marks, canned replies, lead history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the handoff tables and seed a few canned replies."""
    op.create_table(
        "presence",
        sa.Column("user_id", sa.Integer, primary_key=True),
        sa.Column("instance", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
    )
    op.create_table(
        "notes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), nullable=False
        ),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("body_enc", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_notes_conversation_id", "notes", ["conversation_id"])
    op.create_table(
        "hit_marks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("message_id", BigId, nullable=False),
        sa.Column("hit_index", sa.Integer, nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("message_id", "hit_index", name="uq_hit_marks_hit"),
    )
    op.create_index("ix_hit_marks_message_id", "hit_marks", ["message_id"])
    canned = op.create_table(
        "canned_replies",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("lang", sa.String(16), nullable=False),
        sa.Column("title", sa.String(100), nullable=False),
        sa.Column("text", sa.String(2000), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "lead_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("lead_id", BigId, sa.ForeignKey("leads.id"), nullable=False),
        sa.Column("from_state", sa.String(16)),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("user_id", sa.Integer),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("note_enc", sa.LargeBinary),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_lead_events_lead_id", "lead_events", ["lead_id"])
    op.create_table(
        "assignments",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), nullable=False
        ),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS),
    )
    op.create_index("ix_assignments_conversation_id", "assignments", ["conversation_id"])
    op.create_index("ix_assignments_user_id", "assignments", ["user_id"])
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    op.bulk_insert(
        canned,
        [
            {
                "lang": "zh-CN",
                "title": "问候",
                "text": "你好，我是这里的老师。谢谢你愿意说出来，你很勇敢。",
                "updated_at": now,
            },
            {
                "lang": "zh-CN",
                "title": "安全吗",
                "text": "你现在在哪里？身边安全吗？",
                "updated_at": now,
            },
            {
                "lang": "zh-CN",
                "title": "不是你的错",
                "text": "发生这样的事，不是你的错。",
                "updated_at": now,
            },
            {
                "lang": "zh-CN",
                "title": "紧急电话",
                "text": "如果你现在有危险，请马上打 110；有人受伤请打 120。",
                "updated_at": now,
            },
        ],
    )


def downgrade() -> None:
    """Drop the handoff tables."""
    for table in ("assignments", "lead_events", "canned_replies", "hit_marks", "notes", "presence"):
        op.drop_table(table)
