"""The repository: every read and write of conversations, messages, events, leads and kv."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, delete, event, func, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.crypto import Vault
from storage.models import Conversation, Event, KeyValue, Lead, Message, utcnow
from storage.views import ConversationView, LeadView, MessageView

log = logging.getLogger(__name__)
T = TypeVar("T")
_HOLDS_WRITE: ContextVar[bool] = ContextVar("qingting_holds_sqlite_write", default=False)

TRANSIENT_RETRIES = (0.1, 0.3, 1.0, 2.0)  # seconds; a database that goes away for a moment


class StorageUnavailable(RuntimeError):
    """The database did not answer after retries."""


class ConversationNotFound(LookupError):
    """No conversation with that id."""


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, IntegrityError):
        return False
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, OSError | ConnectionError)


class _KeyedLocks:
    """One asyncio.Lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class Store:
    """Async repository over SQLite (default) or PostgreSQL; decrypts on the way out."""

    def __init__(self, engine: AsyncEngine, vault: Vault) -> None:
        self.engine = engine
        self.vault = vault
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._locks = _KeyedLocks()
        self._write_lock = asyncio.Lock()
        self.is_postgres = engine.dialect.name == "postgresql"

    @classmethod
    def open(cls, url: str, vault: Vault, *, pool_size: int = 10) -> Store:
        """Engine for url with the pragmas and pool this project relies on."""
        if url.startswith("sqlite"):
            # Connections to a SQLite file are cheap; a turn holds one while it waits to write.
            engine = create_async_engine(
                url, connect_args={"timeout": 15}, pool_size=20, max_overflow=200
            )
            _sqlite_pragmas(engine)
        else:
            # No pre-ping (a round trip per checkout): a dropped connection raises a
            # "connection invalidated" error that _retry() treats as transient.
            engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
        return cls(engine, vault)

    async def close(self) -> None:
        """Dispose of the connection pool."""
        await self.engine.dispose()

    async def ping(self) -> bool:
        """True when the database answers a trivial query now."""
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:  # any failure means "not healthy"; healthz reports it
            return False

    async def _retry(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run op, retrying a few times when the database is briefly away."""
        for delay in (*TRANSIENT_RETRIES, None):
            try:
                return await op()
            except Exception as exc:
                if not _is_transient(exc):
                    raise
                if delay is None:
                    raise StorageUnavailable(str(exc)) from exc
                log.warning(
                    "database unavailable (%s); retrying in %.1fs", type(exc).__name__, delay
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def _writer(self) -> AsyncIterator[None]:
        """On SQLite, one write transaction at a time in this process.

        SQLite has one writer anyway; queueing here instead of in its busy handler (which
        sleeps and retries) keeps latency flat under load. PostgreSQL needs no such lock.
        """
        if self.is_postgres:
            yield
            return
        if _HOLDS_WRITE.get():
            raise RuntimeError("nested write transaction on SQLite (would wait for itself)")
        async with self._write_lock:
            token = _HOLDS_WRITE.set(True)
            try:
                yield
            finally:
                _HOLDS_WRITE.reset(token)

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncSession]:
        """A write transaction (on SQLite: BEGIN IMMEDIATE under the process's write lock)."""
        if self.is_postgres:
            async with self._sessions() as session, session.begin():
                yield session
            return
        async with self._sessions() as session:
            # The connection first, then the lock: whoever holds the write lock never waits
            # for a pooled connection, so the two can never wait for each other.
            await session.connection(execution_options={"qt_autocommit": True})
            async with self._writer():
                conn = await session.connection()
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield session
                    await session.commit()
                except BaseException:
                    await session.rollback()
                    raise

    # ---- conversations -------------------------------------------------------------------

    async def create_conversation(
        self,
        *,
        channel: str,
        address: str,
        script_id: str,
        script_lang: str,
        script_version: str,
        state: str,
        slots: Mapping[str, Any] | None = None,
        token: str | None = None,
        conversation_id: str | None = None,
    ) -> ConversationView:
        """Create a conversation in bot mode; address and slots are stored encrypted."""
        now = utcnow()
        row = Conversation(
            id=conversation_id or uuid.uuid4().hex,
            channel=channel,
            reporter_id=self.vault.pseudonym(channel, address),
            address_enc=self.vault.encrypt(address),
            token_digest=self.vault.token_digest(token) if token else None,
            script_id=script_id,
            script_lang=script_lang,
            script_version=script_version,
            state=state,
            slots_enc=self._enc_json(slots or {}),
            mode="bot",
            risk_level=0,
            categories=[],
            flags={},
            created_at=now,
            updated_at=now,
        )

        async def op() -> ConversationView:
            async with self._tx() as s:
                s.add(row)
            return self._conv_view(row)

        view = await self._retry(op)
        await self.add_event(view.id, "conversation.started", {"channel": channel})
        return view

    async def get_conversation(self, conversation_id: str) -> ConversationView | None:
        """The conversation with that id, or None."""

        async def op() -> ConversationView | None:
            async with self._sessions() as s:
                row = await s.get(Conversation, conversation_id)
                return self._conv_view(row) if row else None

        return await self._retry(op)

    async def conversation_for_token(self, conversation_id: str, token: str) -> ConversationView:
        """The conversation if token is its bearer token; raises PermissionError otherwise."""

        async def op() -> tuple[Conversation | None]:
            async with self._sessions() as s:
                return (await s.get(Conversation, conversation_id),)

        (row,) = await self._retry(op)
        if row is None:
            raise ConversationNotFound(conversation_id)
        digest = self.vault.token_digest(token)
        if not row.token_digest or not hmac.compare_digest(row.token_digest, digest):
            raise PermissionError("bad token")
        return self._conv_view(row)

    async def find_open_conversation(self, channel: str, address: str) -> ConversationView | None:
        """The newest conversation of (channel, address) that is not closed."""
        reporter = self.vault.pseudonym(channel, address)

        async def op() -> ConversationView | None:
            async with self._sessions() as s:
                q = (
                    select(Conversation)
                    .where(Conversation.channel == channel, Conversation.reporter_id == reporter)
                    .where(Conversation.mode != "closed")
                    .order_by(Conversation.created_at.desc())
                    .limit(1)
                )
                row = (await s.execute(q)).scalar_one_or_none()
                return self._conv_view(row) if row else None

        return await self._retry(op)

    async def list_conversations(
        self,
        *,
        modes: Sequence[str] | None = None,
        assigned_to: int | None = None,
        ids: Sequence[str] | None = None,
        limit: int = 500,
    ) -> list[ConversationView]:
        """Conversations filtered by mode, assignee or ids, newest first."""

        async def op() -> list[ConversationView]:
            async with self._sessions() as s:
                q = select(Conversation).order_by(Conversation.updated_at.desc()).limit(limit)
                if modes is not None:
                    q = q.where(Conversation.mode.in_(list(modes)))
                if assigned_to is not None:
                    q = q.where(Conversation.assigned_to == assigned_to)
                if ids is not None:
                    q = q.where(Conversation.id.in_(list(ids)))
                return [self._conv_view(r) for r in (await s.execute(q)).scalars()]

        return await self._retry(op)

    async def update_conversation_if(
        self, conversation_id: str, expect: Mapping[str, Any], **changes: Any
    ) -> bool:
        """Compare-and-set: apply changes only if the columns in expect hold; True if applied."""

        async def op() -> bool:
            async with self._tx() as s:
                q = update(Conversation).where(Conversation.id == conversation_id)
                for col, val in expect.items():
                    q = q.where(getattr(Conversation, col) == val)
                values = self._conv_changes(changes)
                result = await s.execute(q.values(**values))
                return bool(result.rowcount)

        return await self._retry(op)

    # ---- messages --------------------------------------------------------------------------

    async def store_inbound(
        self,
        conversation_id: str,
        *,
        channel: str,
        message_id: str,
        text: str,
        kind: str = "text",
        received_at: datetime | None = None,
    ) -> tuple[MessageView, bool]:
        """Persist one inbound message; (existing, False) if this platform id was seen before."""
        now = received_at or utcnow()

        async def op() -> tuple[MessageView, bool]:
            try:
                async with self._tx() as s:
                    row = Message(
                        conversation_id=conversation_id,
                        channel=channel,
                        channel_message_id=message_id,
                        direction="in",
                        sender="child",
                        kind=kind,
                        body_enc=self.vault.encrypt(text),
                        created_at=now,
                    )
                    s.add(row)
                    await s.flush()
                    return self._msg_view(row), True
            except IntegrityError:
                async with self._sessions() as s:
                    q = select(Message).where(
                        Message.channel == channel, Message.channel_message_id == message_id
                    )
                    existing = (await s.execute(q)).scalar_one()
                    return self._msg_view(existing), False

        return await self._retry(op)

    async def get_message(self, message_id: int) -> MessageView | None:
        """One message by its database id."""

        async def op() -> MessageView | None:
            async with self._sessions() as s:
                row = await s.get(Message, message_id)
                return self._msg_view(row) if row else None

        return await self._retry(op)

    async def replies_to(self, message_id: int) -> list[MessageView]:
        """The outbound messages produced in answer to one inbound message, in order."""
        return await self._messages(Message.in_reply_to == message_id, Message.direction == "out")

    async def transcript(self, conversation_id: str) -> list[MessageView]:
        """Every message of a conversation in order (callers audit the read)."""
        return await self._messages(Message.conversation_id == conversation_id)

    async def messages_after(self, conversation_id: str, after_id: int) -> list[MessageView]:
        """Messages of a conversation newer than after_id, for resync after a reconnect."""
        return await self._messages(
            Message.conversation_id == conversation_id, Message.id > after_id
        )

    async def inbound_history(
        self, conversation_id: str, before_id: int | None = None, limit: int = 30
    ) -> list[str]:
        """Texts of the child's earlier messages, oldest first (context for the detector)."""

        async def op() -> list[str]:
            async with self._sessions() as s:
                q = select(Message.body_enc).where(
                    Message.conversation_id == conversation_id, Message.direction == "in"
                )
                if before_id is not None:
                    q = q.where(Message.id < before_id)
                q = q.order_by(Message.id.desc()).limit(limit)
                rows = list((await s.execute(q)).scalars())
            return [self.vault.decrypt(b) for b in reversed(rows)]

        return await self._retry(op)

    async def unprocessed_inbound(self, older_than: timedelta = timedelta(0)) -> list[MessageView]:
        """Inbound messages stored but never answered (a crash between store and reply)."""
        cutoff = utcnow() - older_than
        return await self._messages(
            Message.direction == "in",
            Message.processed_at.is_(None),
            Message.created_at <= cutoff,
        )

    async def _messages(self, *where: Any) -> list[MessageView]:
        async def op() -> list[MessageView]:
            async with self._sessions() as s:
                q = select(Message).where(*where).order_by(Message.id)
                return [self._msg_view(r) for r in (await s.execute(q)).scalars()]

        return await self._retry(op)

    # ---- one turn ------------------------------------------------------------------------

    @asynccontextmanager
    async def turn(self, conversation_id: str) -> AsyncIterator[Turn]:
        """Exclusive access to one conversation for load → handle → save, as one transaction.

        PostgreSQL: one transaction holding the row lock (other processes wait). SQLite (one
        process): the in-process conversation lock gives exclusivity, so the turn reads
        without a transaction and takes SQLite's single write lock only to write its changes
        at the end — the reading and thinking of one turn never holds up another's writes.
        """
        async with self._locks.hold(conversation_id):
            session, row = await self._retry(lambda: self._begin_turn(conversation_id))
            turn = Turn(self, session, row)
            try:
                yield turn
                await turn._commit()
            except BaseException:
                await session.rollback()
                raise
            finally:
                turn._release()
                await session.close()

    async def _begin_turn(self, conversation_id: str) -> tuple[AsyncSession, Conversation]:
        """Open the turn's session and read the row (retried as a whole if the DB blinks)."""
        session = self._sessions()
        try:
            if self.is_postgres:
                await session.connection()
                q = select(Conversation).where(Conversation.id == conversation_id)
                q = q.with_for_update()  # other processes wait for this turn
            else:
                session.autoflush = False  # nothing is written before Turn._begin_write()
                await session.connection(execution_options={"qt_autocommit": True})
                q = select(Conversation).where(Conversation.id == conversation_id)
            row = (await session.execute(q)).scalar_one_or_none()
            if row is None:
                raise ConversationNotFound(conversation_id)
            return session, row
        except BaseException:
            await session.close()
            raise

    # ---- events, leads, kv -----------------------------------------------------------------

    async def add_event(
        self,
        conversation_id: str | None,
        type_: str,
        data: Mapping[str, Any] | None = None,
        actor: str = "system",
    ) -> None:
        """Append one event (no child-written text in data)."""

        async def op() -> None:
            async with self._tx() as s:
                s.add(
                    Event(
                        conversation_id=conversation_id,
                        type=type_,
                        actor=actor,
                        data=dict(data or {}),
                        created_at=utcnow(),
                    )
                )

        await self._retry(op)

    async def events(self, conversation_id: str) -> list[dict[str, Any]]:
        """The events of a conversation, oldest first."""

        async def op() -> list[dict[str, Any]]:
            async with self._sessions() as s:
                q = select(Event).where(Event.conversation_id == conversation_id).order_by(Event.id)
                return [
                    {"type": e.type, "actor": e.actor, "data": e.data, "at": e.created_at}
                    for e in (await s.execute(q)).scalars()
                ]

        return await self._retry(op)

    async def lead_by_code(self, code: str) -> LeadView | None:
        """The lead a child's code names, or None."""

        async def op() -> LeadView | None:
            async with self._sessions() as s:
                row = (
                    await s.execute(select(Lead).where(Lead.code == code.strip().upper()))
                ).scalar_one_or_none()
                return self._lead_view(row) if row else None

        return await self._retry(op)

    async def leads_for(self, conversation_id: str) -> list[LeadView]:
        """Leads recorded for one conversation."""

        async def op() -> list[LeadView]:
            async with self._sessions() as s:
                q = select(Lead).where(Lead.conversation_id == conversation_id).order_by(Lead.id)
                return [self._lead_view(r) for r in (await s.execute(q)).scalars()]

        return await self._retry(op)

    async def kv_add(self, key: str, value: str, ttl: timedelta) -> bool:
        """Set key only if absent or expired (SET NX EX); True if this call set it."""
        now = utcnow()

        async def op() -> bool:
            async with self._tx() as s:
                await s.execute(
                    delete(KeyValue).where(KeyValue.key == key, KeyValue.expires_at < now)
                )
            try:
                async with self._tx() as s:
                    s.add(KeyValue(key=key, value=value, expires_at=now + ttl))
                return True
            except IntegrityError:
                return False

        return await self._retry(op)

    async def kv_get(self, key: str) -> str | None:
        """Value of an unexpired key."""

        async def op() -> str | None:
            async with self._sessions() as s:
                row = await s.get(KeyValue, key)
                if row is None or (row.expires_at and _aware(row.expires_at) < utcnow()):
                    return None
                return row.value

        return await self._retry(op)

    async def kv_set(self, key: str, value: str, ttl: timedelta | None) -> None:
        """Set key unconditionally."""

        async def op() -> None:
            async with self._tx() as s:
                await s.merge(
                    KeyValue(key=key, value=value, expires_at=utcnow() + ttl if ttl else None)
                )

        await self._retry(op)

    # ---- row → view -----------------------------------------------------------------------

    def _enc_json(self, value: Any) -> bytes:
        return self.vault.encrypt(json.dumps(value, ensure_ascii=False))

    def _dec_json(self, blob: bytes | None) -> Any:
        return json.loads(self.vault.decrypt(blob)) if blob else None

    def _conv_changes(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        values = dict(changes)
        if "slots" in values:
            values["slots_enc"] = self._enc_json(dict(values.pop("slots")))
        if "categories" in values:
            values["categories"] = sorted(values["categories"])
        if "flags" in values:
            values["flags"] = dict(values["flags"])
        values.setdefault("updated_at", utcnow())
        return values

    def _conv_view(self, r: Conversation) -> ConversationView:
        return ConversationView(
            id=r.id,
            channel=r.channel,
            reporter_id=r.reporter_id,
            address=self.vault.decrypt(r.address_enc),
            script_id=r.script_id,
            script_lang=r.script_lang,
            script_version=r.script_version,
            state=r.state,
            slots=self._dec_json(r.slots_enc) or {},
            mode=r.mode,
            risk_level=r.risk_level,
            categories=tuple(r.categories or ()),
            flags=dict(r.flags or {}),
            assigned_to=r.assigned_to,
            created_at=_aware(r.created_at),
            updated_at=_aware(r.updated_at),
            last_inbound_at=_aware(r.last_inbound_at) if r.last_inbound_at else None,
            closed_at=_aware(r.closed_at) if r.closed_at else None,
            waiting_since=_aware(r.waiting_since) if r.waiting_since else None,
        )

    def _msg_view(self, r: Message) -> MessageView:
        body = self.vault.decrypt(r.body_enc)
        text, options = body, ()
        if r.direction == "out":
            payload = json.loads(body)
            text, options = payload["text"], tuple(payload.get("options", ()))
        return MessageView(
            id=r.id,
            conversation_id=r.conversation_id,
            direction=r.direction,
            sender=r.sender,
            kind=r.kind,
            text=text,
            options=options,
            risk_level=r.risk_level,
            categories=tuple(r.categories or ()),
            assessment=self._dec_json(r.assessment_enc),
            in_reply_to=r.in_reply_to,
            created_at=_aware(r.created_at) if r.created_at else None,
            processed_at=_aware(r.processed_at) if r.processed_at else None,
            channel_message_id=r.channel_message_id,
        )

    def _lead_view(self, r: Lead) -> LeadView:
        return LeadView(
            id=r.id,
            code=r.code,
            conversation_id=r.conversation_id,
            category=r.category,
            risk_level=r.risk_level,
            summary=self.vault.decrypt(r.summary_enc) if r.summary_enc else None,
            district=self.vault.decrypt(r.district_enc) if r.district_enc else None,
            state=r.state,
            created_at=_aware(r.created_at),
            updated_at=_aware(r.updated_at),
        )


class Turn:
    """Writes of one turn, inside the conversation's lock and transaction."""

    def __init__(self, store: Store, session: AsyncSession, row: Conversation) -> None:
        self._store = store
        self._s = session
        self._row = row
        self._loaded: dict[int, Message] = {}  # messages read in this turn, to update in place
        self._writing = False
        self._lock_token: Any = None
        self.assessed_level: int | None = None  # the last set_assessment(), for relaying
        self.assessed: dict[str, Any] | None = None
        self.conversation = store._conv_view(row)

    async def _begin_write(self) -> None:
        """SQLite: take the process's write lock and start the write transaction (once)."""
        if self._writing or self._store.is_postgres:
            return
        if _HOLDS_WRITE.get():
            raise RuntimeError("nested write transaction on SQLite (would wait for itself)")
        await self._store._write_lock.acquire()
        self._lock_token = _HOLDS_WRITE.set(True)
        self._writing = True
        conn = await self._s.connection()
        await conn.exec_driver_sql("BEGIN IMMEDIATE")

    async def _commit(self) -> None:
        """Write what the turn changed, in one short transaction."""
        if self._s.new or self._s.dirty or self._s.deleted:
            await self._begin_write()
        await self._s.flush()
        await self._s.commit()

    def _release(self) -> None:
        if self._writing and not self._store.is_postgres:
            _HOLDS_WRITE.reset(self._lock_token)
            self._store._write_lock.release()
            self._writing = False

    async def message(self, message_id: int) -> MessageView:
        """One message of this conversation, read inside the turn."""
        row = await self._s.get(Message, message_id, populate_existing=True)
        if row is not None:
            self._loaded[message_id] = row
        if row is None or row.conversation_id != self._row.id:
            raise LookupError(f"message {message_id} is not in conversation {self._row.id}")
        return self._store._msg_view(row)

    async def replies_to(self, message_id: int) -> list[MessageView]:
        """Outbound messages already stored in answer to message_id."""
        q = (
            select(Message)
            .where(Message.in_reply_to == message_id, Message.direction == "out")
            .order_by(Message.id)
        )
        return [self._store._msg_view(r) for r in (await self._s.execute(q)).scalars()]

    async def history(self, before_id: int, limit: int = 30) -> list[str]:
        """The child's earlier texts in this conversation, oldest first."""
        q = (
            select(Message.body_enc)
            .where(
                Message.conversation_id == self._row.id,
                Message.direction == "in",
                Message.id < before_id,
            )
            .order_by(Message.id.desc())
            .limit(limit)
        )
        rows = list((await self._s.execute(q)).scalars())
        return [self._store.vault.decrypt(b) for b in reversed(rows)]

    async def waiting_ahead(self) -> int:
        """How many waiting conversations rank before this one (higher risk, or same and older)."""
        me = self._row
        since = me.waiting_since or utcnow()
        q = (
            select(func.count())
            .select_from(Conversation)
            .where(
                Conversation.mode == "waiting",
                Conversation.id != me.id,
                or_(
                    Conversation.risk_level > me.risk_level,
                    and_(
                        Conversation.risk_level == me.risk_level,
                        Conversation.waiting_since < since,
                    ),
                ),
            )
        )
        return int((await self._s.execute(q)).scalar_one())

    async def assign(self, user_id: int | None) -> None:
        """End the current holder's assignment and start user_id's (None: nobody holds it)."""
        await self._begin_write()
        from storage.models_handoff import Assignment

        now = utcnow()
        await self._s.execute(
            update(Assignment)
            .where(Assignment.conversation_id == self._row.id, Assignment.ended_at.is_(None))
            .values(ended_at=now)
        )
        if user_id is not None:
            self._s.add(Assignment(conversation_id=self._row.id, user_id=user_id, started_at=now))
        await self.update(assigned_to=user_id)

    async def update(self, **changes: Any) -> ConversationView:
        """Change conversation columns (state, slots, mode, risk_level, categories, flags...)."""
        for key, value in self._store._conv_changes(changes).items():
            setattr(self._row, key, value)
        # No flush: the changes go out in one UPDATE at the next query or at commit.
        self.conversation = self._store._conv_view(self._row)
        return self.conversation

    async def add_outbound(
        self,
        text: str,
        options: Sequence[Mapping[str, str]] = (),
        *,
        sender: str = "bot",
        in_reply_to: int | None = None,
        kind: str = "text",
    ) -> MessageView:
        """Store one message to the child (before it is sent)."""
        await self._begin_write()  # the caller wants the id: the row is written now
        payload = {"text": text, "options": [dict(o) for o in options]}
        row = Message(
            conversation_id=self._row.id,
            channel=self._row.channel,
            channel_message_id=None,
            direction="out",
            sender=sender,
            kind=kind,
            body_enc=self._store._enc_json(payload),
            in_reply_to=in_reply_to,
            created_at=utcnow(),
        )
        self._s.add(row)
        await self._s.flush()
        return self._store._msg_view(row)

    def add_replies(
        self, replies: Sequence[tuple[str, Sequence[Mapping[str, str]]]], in_reply_to: int
    ) -> None:
        """Store the bot's replies to one message (ids are not needed, so no flush)."""
        now = utcnow()
        for text, options in replies:
            self._s.add(
                Message(
                    conversation_id=self._row.id,
                    channel=self._row.channel,
                    channel_message_id=None,
                    direction="out",
                    sender="bot",
                    kind="text",
                    body_enc=self._store._enc_json(
                        {"text": text, "options": [dict(o) for o in options]}
                    ),
                    in_reply_to=in_reply_to,
                    created_at=now,
                )
            )

    async def set_assessment(
        self, message_id: int, level: int, categories: Sequence[str], detail: Mapping[str, Any]
    ) -> None:
        """Record the detector's result on an inbound message (hits encrypted: they quote it)."""
        row = self._loaded.get(message_id) or await self._s.get(Message, message_id)
        if row is None:
            raise LookupError(message_id)
        row.risk_level = level
        row.categories = list(categories)
        row.assessment_enc = self._store._enc_json(dict(detail))
        self.assessed_level, self.assessed = level, dict(detail)

    async def mark_processed(self, message_id: int) -> None:
        """The inbound message has been answered."""
        row = self._loaded.get(message_id) or await self._s.get(Message, message_id)
        if row is None:
            raise LookupError(message_id)
        row.processed_at = utcnow()

    async def add_event(
        self, type_: str, data: Mapping[str, Any] | None = None, actor: str = "system"
    ) -> None:
        """Append an event in this turn's transaction."""
        self._s.add(
            Event(
                conversation_id=self._row.id,
                type=type_,
                actor=actor,
                data=dict(data or {}),
                created_at=utcnow(),
            )
        )

    async def lead_by_code(self, code: str) -> LeadView | None:
        """A lead by its code, read inside the turn."""
        row = (await self._s.execute(select(Lead).where(Lead.code == code))).scalar_one_or_none()
        return self._store._lead_view(row) if row else None

    async def upsert_lead(
        self,
        code: str,
        *,
        linked: bool = False,
        risk_level: int,
        summary: str | None = None,
        district: str | None = None,
        category: str | None = None,
    ) -> LeadView:
        """Create the lead with this code, or update it if this conversation already has it."""
        await self._begin_write()
        q = select(Lead).where(Lead.code == code)
        row = (await self._s.execute(q)).scalar_one_or_none()
        now = utcnow()
        if row is None:
            row = Lead(
                code=code,
                conversation_id=self._row.id,
                state="accepted",
                created_at=now,
                risk_level=risk_level,
            )
            self._s.add(row)
        elif row.conversation_id != self._row.id and not linked:
            # Only a conversation the child linked by quoting the code may update it.
            raise ValueError(f"lead code {code} belongs to another conversation")
        row.risk_level = max(row.risk_level or 0, risk_level)
        if summary is not None:
            row.summary_enc = self._store.vault.encrypt(summary)
        if district is not None:
            row.district_enc = self._store.vault.encrypt(district)
        if category is not None:
            row.category = category
        row.updated_at = now
        await self._s.flush()
        return self._store._lead_view(row)


def _aware(dt: datetime) -> datetime:
    """SQLite returns naive datetimes; every value we store is UTC."""
    from datetime import UTC

    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    """WAL, foreign keys, and BEGIN IMMEDIATE for writers so they queue instead of failing."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=15000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Reads take a deferred snapshot (WAL readers never block); writes take the lock up
        # front, because a deferred reader upgrading to writer fails with SQLITE_BUSY at once.
        if conn.get_execution_options().get("qt_autocommit"):
            return  # reads in autocommit; writers issue BEGIN IMMEDIATE under the write lock
        conn.exec_driver_sql("BEGIN")
