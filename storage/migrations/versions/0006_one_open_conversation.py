"""One open conversation per child and channel: a partial unique index.

Two serve processes that received a new child's first messages at the same moment could each
find no open conversation and each open one, splitting the child's words between two chats.
The unique index on (channel, reporter_id) over conversations that are not closed makes the
database refuse the second; the pipeline then uses the first.

A deployed database may already hold such pairs, and the index cannot be built over them. So
first, for every (channel, reporter_id) with more than one conversation that is not closed,
the one a volunteer holds or a child waits in is kept (closing it would cut a live handoff),
else the newest (the one find_open_conversation has been giving new messages to), and each
other one is closed as a volunteer's close would: mode 'closed', closed_at now, nobody
assigned, its open assignment ended, and an event conversation.closed {"by": "migration",
"reason": "duplicate", "kept": <id of the one kept>}. Their messages, leads and notes stay.
Downgrade drops the index only; the duplicates it closed stay closed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

NOT_CLOSED = "mode <> 'closed'"
TS = sa.DateTime(timezone=True)

conversations = sa.table(
    "conversations",
    sa.column("id", sa.String),
    sa.column("channel", sa.String),
    sa.column("reporter_id", sa.String),
    sa.column("mode", sa.String),
    sa.column("assigned_to", sa.Integer),
    sa.column("created_at", TS),
    sa.column("updated_at", TS),
    sa.column("closed_at", TS),
)
assignments = sa.table(
    "assignments", sa.column("conversation_id", sa.String), sa.column("ended_at", TS)
)
events = sa.table(
    "events",
    sa.column("conversation_id", sa.String),
    sa.column("type", sa.String),
    sa.column("actor", sa.String),
    sa.column("data", sa.JSON),
    sa.column("created_at", TS),
)


def upgrade() -> None:
    """Close all but one open conversation of each child, then create the index."""
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        # Serve processes still running the old code must not open a new duplicate between
        # the clean-up and the index (it would fail the migration); they wait for the commit.
        op.execute("LOCK TABLE conversations IN SHARE ROW EXCLUSIVE MODE")
    _close_duplicates(conn)
    op.create_index(
        "uq_conversations_open_reporter",
        "conversations",
        ["channel", "reporter_id"],
        unique=True,
        sqlite_where=sa.text(NOT_CLOSED),
        postgresql_where=sa.text(NOT_CLOSED),
    )


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("uq_conversations_open_reporter", table_name="conversations")


def _close_duplicates(conn: Any) -> None:
    """Close the older open conversations of every (channel, reporter_id) that has several."""
    c = conversations.c
    is_open = c.mode != "closed"
    pairs = conn.execute(
        sa.select(c.channel, c.reporter_id)
        .where(is_open)
        .group_by(c.channel, c.reporter_id)
        .having(sa.func.count() > 1)
    ).all()
    at = datetime.now(UTC)
    for channel, reporter in pairs:
        keep, *older = conn.execute(
            sa.select(c.id)
            .where(is_open, c.channel == channel, c.reporter_id == reporter)
            # a chat a volunteer holds or a child waits in is kept: closing it would cut a
            # live handoff; otherwise the newest, where new messages have been going
            .order_by(
                sa.case((c.mode.in_(("human", "waiting")), 0), else_=1),
                c.created_at.desc(),
                c.id.desc(),
            )
        ).scalars()
        conn.execute(
            sa.update(conversations)
            .where(c.id.in_(older))
            .values(mode="closed", assigned_to=None, closed_at=at, updated_at=at)
        )
        conn.execute(
            sa.update(assignments)
            .where(assignments.c.conversation_id.in_(older), assignments.c.ended_at.is_(None))
            .values(ended_at=at)
        )
        conn.execute(
            sa.insert(events),
            [
                {
                    "conversation_id": cid,
                    "type": "conversation.closed",
                    "actor": "system",
                    "data": {"by": "migration", "reason": "duplicate", "kept": keep},
                    "created_at": at,
                }
                for cid in older
            ],
        )
