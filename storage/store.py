"""The repository: every read and write of conversations, messages, events, leads and kv."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, event, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.crypto import Vault
from storage.fastpath import (
    Codec,
    Link,
    Rec,
    Step,
    is_transient_driver_error,
    is_unique_violation,
    link,
)
from storage.models import Conversation, Event, KeyValue, Lead, Message, utcnow
from storage.views import ConversationView, LeadView, MessageView

log = logging.getLogger(__name__)
T = TypeVar("T")
MESSAGE_INSERT_COLUMNS = (
    "conversation_id",
    "channel",
    "channel_message_id",
    "direction",
    "sender",
    "kind",
    "body_enc",
    "in_reply_to",
    "created_at",
)
_HOLDS_WRITE: ContextVar[bool] = ContextVar("qingting_holds_sqlite_write", default=False)

TRANSIENT_RETRIES = (0.1, 0.3, 1.0, 2.0)  # seconds; a database that goes away for a moment
HISTORY_PREFETCH = 30  # earlier texts read with a turn's message (what the detector is given)


class StorageUnavailable(RuntimeError):
    """The database did not answer after retries."""


class ConversationNotFound(LookupError):
    """No conversation with that id."""


class ConversationAlreadyOpen(Exception):
    """create_conversation: (channel, address) already has a conversation that is not closed."""


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, IntegrityError):
        return False
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        return is_transient_driver_error(exc.orig) if isinstance(exc.orig, sqlite3.Error) else True
    if is_transient_driver_error(exc):  # raised on the fast path, not wrapped by SQLAlchemy
        return True
    return isinstance(exc, OSError | ConnectionError)


def normalize_code(code: str) -> str:
    """Lead codes are stored and looked up in one form: trimmed, upper case."""
    return code.strip().upper()


_CONVERSATION_FIELDS = frozenset(Conversation.__table__.columns.keys()) | {"slots"}


class KeyedLocks:
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
        self._locks = KeyedLocks()
        self._write_lock = asyncio.Lock()
        self.is_postgres = engine.dialect.name == "postgresql"
        self._codecs: dict[str, Codec] = {}
        self._prepare_sql()

    @classmethod
    def open(cls, url: str, vault: Vault, *, pool_size: int = 10) -> Store:
        """Engine for url with the pragmas and pool this project relies on."""
        if url.startswith("sqlite"):
            # Connections to a SQLite file are cheap; a turn holds one while it waits to write.
            # Every user ends its own transaction (sessions roll back on close, the fast path
            # refuses to return a link with one open), so the pool skips its reset round trip.
            engine = create_async_engine(
                url,
                connect_args={"timeout": 15},
                pool_size=20,
                max_overflow=200,
                pool_reset_on_return=None,
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

    # ---- the fast path's statements (plain SQL on the driver; see storage/fastpath.py) -----

    def _codec(self, table: Any) -> Codec:
        codec = self._codecs.get(table.name)
        if codec is None:
            codec = self._codecs[table.name] = Codec(table, self.engine.dialect)
        return codec

    def _prepare_sql(self) -> None:
        self._conv_codec = cc = self._codec(Conversation.__table__)
        self._msg_codec = mc = self._codec(Message.__table__)
        self._lead_codec = lc = self._codec(Lead.__table__)
        self._event_codec = self._codec(Event.__table__)
        self._msg_body_index = mc.cols.index("body_enc")
        self._sql_conv_by_id = f"SELECT {cc.select} FROM conversations WHERE id = ?"
        # A turn's message and the child's earlier ones (newest first) in one query: the
        # message itself is the first row when it belongs to this conversation.
        self._sql_message_and_history = (
            f"SELECT {mc.select} FROM messages WHERE conversation_id = ? "
            f"AND (id = ? OR (direction = 'in' AND id < ?)) "
            f"ORDER BY id DESC LIMIT {HISTORY_PREFETCH + 1}"
        )
        self._sql_history = (
            "SELECT body_enc FROM messages WHERE conversation_id = ? AND direction = 'in' "
            "AND id < ? ORDER BY id DESC LIMIT ?"
        )
        self._sql_replies_to = (
            f"SELECT {mc.select} FROM messages WHERE in_reply_to = ? AND direction = 'out' "
            "ORDER BY id"
        )
        cols = MESSAGE_INSERT_COLUMNS
        self._sql_insert_message = self._insert_sql("messages", cols)
        self._sql_insert_message_returning = self._sql_insert_message + " RETURNING id"
        self._sql_store_inbound = (
            self._sql_insert_message
            + " ON CONFLICT (channel, channel_message_id) DO NOTHING RETURNING id"
        )
        self._sql_message_by_platform_id = (
            f"SELECT {mc.select} FROM messages WHERE channel = ? AND channel_message_id = ?"
        )
        self._sql_lead_by_code = f"SELECT {lc.select} FROM leads WHERE code = ?"
        self._sql_insert_event = self._insert_sql(
            "events", ("conversation_id", "type", "actor", "data", "created_at")
        )

    @staticmethod
    def _insert_sql(table: str, cols: Sequence[str]) -> str:
        marks = ", ".join("?" * len(cols))
        return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"

    @staticmethod
    def _update_step(codec: Codec, changes: Mapping[str, Any], row_id: Any) -> Step:
        cols = list(changes)
        sets = ", ".join(f"{c} = ?" for c in cols)
        params = (*(codec.dump(c, changes[c]) for c in cols), row_id)
        return ("exec", f"UPDATE {codec.table} SET {sets} WHERE id = ?", params)

    def _event_step(
        self,
        conversation_id: str | None,
        type_: str,
        data: Mapping[str, Any] | None,
        actor: str,
    ) -> Step:
        ec = self._event_codec
        params = (
            conversation_id,
            type_,
            actor,
            ec.dump("data", dict(data or {})),
            ec.dump("created_at", utcnow()),
        )
        return ("exec", self._sql_insert_event, params)

    def _link(self) -> Any:
        """A pooled connection used through its driver (storage/fastpath.py)."""
        return link(self.engine)

    async def _write(self, steps: Sequence[Step]) -> list[Any]:
        """Steps as one transaction (SQLite: BEGIN IMMEDIATE under the process's write lock)."""
        async with self._link() as lk, self._writer():
            if len(steps) == 1:
                return await lk.run(steps)
            lk.in_tx = True
            begin = "BEGIN" if self.is_postgres else "BEGIN IMMEDIATE"
            results = await lk.run([("exec", begin, ()), *steps, ("exec", "COMMIT", ())])
            lk.in_tx = False
            return results[1:-1]

    async def _conv_rec(self, conversation_id: str) -> Rec | None:
        async def op() -> Rec | None:
            async with self._link() as lk:
                row = await lk.one("row", self._sql_conv_by_id, (conversation_id,))
            return self._conv_codec.load(row) if row is not None else None

        return await self._retry(op)

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
        values: dict[str, Any] = {
            "id": conversation_id or uuid.uuid4().hex,
            "channel": channel,
            "reporter_id": self.vault.pseudonym(channel, address),
            "address_enc": self.vault.encrypt(address),
            "token_digest": self.vault.token_digest(token) if token else None,
            "script_id": script_id,
            "script_lang": script_lang,
            "script_version": script_version,
            "state": state,
            "slots_enc": self._enc_json(slots or {}),
            "mode": "bot",
            "risk_level": 0,
            "categories": [],
            "flags": {},
            "created_at": now,
            "updated_at": now,
        }
        cc = self._conv_codec
        cols = tuple(values)
        steps = [
            (
                "exec",
                self._insert_sql("conversations", cols),
                [cc.dump(c, values[c]) for c in cols],
            ),
            self._event_step(values["id"], "conversation.started", {"channel": channel}, "system"),
        ]
        try:
            await self._retry(lambda: self._write(steps))
        except Exception as exc:
            # The unique index over open conversations (not transient, so not retried): another
            # process opened this child's conversation first, and the caller takes theirs.
            if is_unique_violation(
                exc,
                "uq_conversations_open_reporter",
                "conversations.channel, conversations.reporter_id",
            ):
                raise ConversationAlreadyOpen(channel) from exc
            raise
        rec = Rec(
            **values, assigned_to=None, waiting_since=None, last_inbound_at=None, closed_at=None
        )
        return self._conv_view(rec)

    async def get_conversation(self, conversation_id: str) -> ConversationView | None:
        """The conversation with that id, or None."""
        rec = await self._conv_rec(conversation_id)
        return self._conv_view(rec) if rec is not None else None

    async def conversation_for_token(self, conversation_id: str, token: str) -> ConversationView:
        """The conversation if token is its bearer token; raises PermissionError otherwise."""
        rec = await self._conv_rec(conversation_id)
        if rec is None:
            raise ConversationNotFound(conversation_id)
        digest = self.vault.token_digest(token)
        if not rec.token_digest or not hmac.compare_digest(rec.token_digest, digest):
            raise PermissionError("bad token")
        return self._conv_view(rec)

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

        async def locked() -> bool:
            # Under the conversation's lock: a SQLite turn writes its columns at the end, and
            # would otherwise overwrite what this set while the turn was running.
            async with self._locks.hold(conversation_id):
                return await self._retry(op)

        async def op() -> bool:
            async with self._tx() as s:
                q = update(Conversation).where(Conversation.id == conversation_id)
                for col, val in expect.items():
                    q = q.where(getattr(Conversation, col) == val)
                values = self._conv_changes(changes)
                result = await s.execute(q.values(**values))
                return bool(getattr(result, "rowcount", 0))  # a CursorResult for an UPDATE

        return await locked()

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
        mc = self._msg_codec
        params = (
            conversation_id,
            channel,
            message_id,
            "in",
            "child",
            kind,
            self.vault.encrypt(text),
            None,
            mc.dump("created_at", now),
        )

        async def op() -> tuple[MessageView, bool]:
            async with self._link() as lk:
                # INSERT ... ON CONFLICT DO NOTHING: a platform retry costs no error round trip.
                async with self._writer():
                    row = await lk.one("row", self._sql_store_inbound, params)
                if row is not None:
                    view = MessageView(
                        id=int(row[0]),
                        conversation_id=conversation_id,
                        direction="in",
                        sender="child",
                        kind=kind,
                        text=text,
                        created_at=_aware(now),
                        channel_message_id=message_id,
                    )
                    return view, True
                existing = await lk.one(
                    "row", self._sql_message_by_platform_id, (channel, message_id)
                )
            if existing is None:  # the conflicting insert was rolled back meanwhile: again
                raise OperationalError("store_inbound", None, RuntimeError("lost race"))
            return self._msg_view(mc.load(existing)), False

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
            stack, lk, rec = await self._retry(lambda: self._begin_turn(conversation_id))
            turn = Turn(self, lk, rec)
            try:
                yield turn
                await turn._commit()
            except BaseException as exc:
                try:  # roll back (and give the connection back) before another writer goes
                    await stack.__aexit__(type(exc), exc, exc.__traceback__)
                finally:
                    turn._release()
                raise
            turn._release()
            await stack.aclose()

    async def _begin_turn(self, conversation_id: str) -> tuple[AsyncExitStack, Link, Rec]:
        """Hold a connection and read the row (retried as a whole if the DB blinks)."""
        stack = AsyncExitStack()
        try:
            lk = await stack.enter_async_context(self._link())
            if self.is_postgres:
                lk.in_tx = True
                _, row = await lk.run(
                    [
                        ("exec", "BEGIN", ()),
                        ("row", self._sql_conv_by_id + " FOR UPDATE", (conversation_id,)),
                    ]
                )  # other processes wait for this turn
            else:
                row = await lk.one("row", self._sql_conv_by_id, (conversation_id,))
            if row is None:
                raise ConversationNotFound(conversation_id)
            return stack, lk, self._conv_codec.load(row)
        except BaseException as exc:
            await stack.__aexit__(type(exc), exc, exc.__traceback__)
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
        step = self._event_step(conversation_id, type_, data, actor)
        await self._retry(lambda: self._write([step]))

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
                    await s.execute(select(Lead).where(Lead.code == normalize_code(code)))
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
        unknown = set(changes) - _CONVERSATION_FIELDS
        if unknown:  # a misspelt "mode" or "risk_level" must fail loudly, not vanish
            raise KeyError(f"not conversation columns: {sorted(unknown)}")
        values = dict(changes)
        if "slots" in values:
            values["slots_enc"] = self._enc_json(dict(values.pop("slots")))
        if "categories" in values:
            values["categories"] = sorted(values["categories"])
        if "flags" in values:
            values["flags"] = dict(values["flags"])
        values.setdefault("updated_at", utcnow())
        return values

    def _conv_view(self, r: Conversation | Rec) -> ConversationView:
        return ConversationView(
            id=r.id,
            channel=r.channel,
            reporter_id=r.reporter_id,
            address=self.vault.decrypt(r.address_enc) if r.address_enc else "",  # "": purged
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

    def _msg_view(self, r: Message | Rec) -> MessageView:
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

    def _lead_view(self, r: Lead | Rec) -> LeadView:
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
    """Writes of one turn, inside the conversation's lock (and, on PostgreSQL, its row lock).

    Reads go to the database as they are asked for; writes are kept here and sent together at
    the end (one UPDATE per changed row, the new rows after them), except where the caller needs
    an id now (add_outbound, upsert_lead, assign), which writes what is pending at once.
    """

    def __init__(self, store: Store, link: Link, row: Rec) -> None:
        self._store = store
        self._lk = link
        self._row = row
        self._msgs: dict[int, Rec] = {}  # messages read in this turn
        self._msg_changes: dict[int, dict[str, Any]] = {}
        self._conv_changes: dict[str, Any] = {}
        self._inserts: list[Step] = []  # new messages and events, in call order
        self._history: tuple[int, list[bytes]] | None = None  # (before_id, newest first)
        self._writing = False
        self._lock_token: Any = None
        self.assessed_level: int | None = None  # the last set_assessment(), for relaying
        self.assessed: dict[str, Any] | None = None
        self.conversation = store._conv_view(row)

    async def _write_steps(self) -> list[Step]:
        """Steps that open the write transaction (SQLite: under the process's write lock)."""
        if self._lk.in_tx:
            return []  # PostgreSQL turns are in their transaction from the start
        if _HOLDS_WRITE.get():
            raise RuntimeError("nested write transaction on SQLite (would wait for itself)")
        await self._store._write_lock.acquire()
        self._lock_token = _HOLDS_WRITE.set(True)
        self._writing = True
        self._lk.in_tx = True
        return [("exec", "BEGIN IMMEDIATE", ())]

    def _pending_steps(self) -> list[Step]:
        """The writes kept so far, as statements (and forget them)."""
        s = self._store
        steps = list(self._inserts)
        self._inserts.clear()
        for message_id, changes in self._msg_changes.items():
            steps.append(s._update_step(s._msg_codec, changes, message_id))
        self._msg_changes.clear()
        if self._conv_changes:
            steps.append(s._update_step(s._conv_codec, self._conv_changes, self._row.id))
            self._conv_changes = {}
        return steps

    async def _autoflush(self) -> None:
        """PostgreSQL: pending writes go out before a read that might see them (as the ORM did).

        SQLite reads in a turn do not flush: that would take the write lock early.
        """
        if self._store.is_postgres and (self._inserts or self._msg_changes or self._conv_changes):
            await self._lk.run(self._pending_steps())

    async def _write_now(self, steps: Sequence[Step]) -> list[Any]:
        """Open the write transaction if needed, send what is pending, then steps; their results."""
        pre = await self._write_steps()
        pre += self._pending_steps()
        results = await self._lk.run([*pre, *steps])
        return results[len(pre) :]

    async def _commit(self) -> None:
        """Write what the turn changed, in one short transaction."""
        pending = self._pending_steps()
        if not pending and not self._lk.in_tx:
            return
        steps = (await self._write_steps() if pending else []) + pending
        await self._lk.run([*steps, ("exec", "COMMIT", ())])
        self._lk.in_tx = False

    def _release(self) -> None:
        if self._writing:
            _HOLDS_WRITE.reset(self._lock_token)
            self._store._write_lock.release()
            self._writing = False

    async def message(self, message_id: int) -> MessageView:
        """One message of this conversation, read inside the turn."""
        await self._autoflush()
        s = self._store
        # The child's earlier messages come in the same query: history() is asked for next.
        rows = await self._lk.one(
            "rows", s._sql_message_and_history, (self._row.id, message_id, message_id)
        )
        if not rows or rows[0][0] != message_id:
            raise LookupError(f"message {message_id} is not in conversation {self._row.id}")
        rec = s._msg_codec.load(rows[0])
        for key, value in self._msg_changes.get(message_id, {}).items():
            setattr(rec, key, value)
        self._msgs[message_id] = rec
        body = s._msg_body_index
        self._history = (message_id, [r[body] for r in rows[1:]])
        return s._msg_view(rec)

    async def replies_to(self, message_id: int) -> list[MessageView]:
        """Outbound messages already stored in answer to message_id."""
        await self._autoflush()
        s = self._store
        rows = await self._lk.one("rows", s._sql_replies_to, (message_id,))
        return [s._msg_view(s._msg_codec.load(r)) for r in rows]

    async def history(self, before_id: int, limit: int = 30) -> list[str]:
        """The child's earlier texts in this conversation, oldest first."""
        decrypt = self._store.vault.decrypt
        if self._history and self._history[0] == before_id and limit <= HISTORY_PREFETCH:
            bodies = self._history[1][:limit]
        else:
            await self._autoflush()
            rows = await self._lk.one(
                "rows", self._store._sql_history, (self._row.id, before_id, limit)
            )
            bodies = [r[0] for r in rows]
        return [decrypt(b) for b in reversed(bodies)]

    async def volunteers_with_room(self, ttl: timedelta) -> int:
        """Volunteers with a console heartbeat fresher than ttl, available, with room for one
        more chat (HandoffRepo.online's answer). Read on this turn's own connection: asking the
        pool for a second one while the turn holds its first can exhaust it when many urgent
        turns run at once."""
        from storage.handoff_repo import presence_views
        from storage.models_handoff import Presence

        await self._autoflush()
        codec = self._store._codec(Presence.__table__)
        rows = await self._lk.one(
            "rows",
            f"SELECT {codec.select}, (SELECT count(*) FROM conversations c WHERE "
            "c.mode = 'human' AND c.assigned_to = presence.user_id) "
            "FROM presence WHERE last_seen_at >= ?",
            (codec.dump("last_seen_at", utcnow() - ttl),),
        )
        recs = [(codec.load(r[:-1]), r[-1]) for r in rows]
        views = presence_views(
            (p.user_id, p.status, p.capacity, n, p.last_seen_at) for p, n in recs
        )
        return sum(v.has_room for v in views)

    async def waiting_ahead(self) -> int:
        """How many waiting conversations rank before this one (higher risk, or same and older)."""
        await self._autoflush()
        me = self._row
        since = self._store._conv_codec.dump("waiting_since", me.waiting_since or utcnow())
        row = await self._lk.one(
            "row",
            "SELECT count(*) FROM conversations WHERE mode = 'waiting' AND id != ? AND "
            "(risk_level > ? OR (risk_level = ? AND waiting_since < ?))",
            (me.id, me.risk_level, me.risk_level, since),
        )
        return int(row[0])

    async def assign(self, user_id: int | None) -> None:
        """End the current holder's assignment and start user_id's (None: nobody holds it)."""
        from storage.models_handoff import Assignment

        codec = self._store._codec(Assignment.__table__)
        now = codec.dump("started_at", utcnow())
        steps: list[Step] = [
            (
                "exec",
                "UPDATE assignments SET ended_at = ? "
                "WHERE conversation_id = ? AND ended_at IS NULL",
                (now, self._row.id),
            )
        ]
        if user_id is not None:
            steps.append(
                (
                    "exec",
                    "INSERT INTO assignments (conversation_id, user_id, started_at) "
                    "VALUES (?, ?, ?)",
                    (self._row.id, user_id, now),
                )
            )
        await self._write_now(steps)
        await self.update(assigned_to=user_id)

    async def update(self, **changes: Any) -> ConversationView:
        """Change conversation columns (state, slots, mode, risk_level, categories, flags...)."""
        for key, value in self._store._conv_changes(changes).items():
            setattr(self._row, key, value)
            self._conv_changes[key] = value  # _conv_changes() yields only columns
        # No write yet: the changes go out in one UPDATE at commit.
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
        now = utcnow()
        opts = [dict(o) for o in options]
        step = self._outbound_step(text, opts, sender, kind, in_reply_to, now, returning=True)
        (row,) = await self._write_now([step])  # the caller wants the id: written now
        return MessageView(
            id=int(row[0]),
            conversation_id=self._row.id,
            direction="out",
            sender=sender,
            kind=kind,
            text=text,
            options=tuple(opts),
            in_reply_to=in_reply_to,
            created_at=now,
        )

    def _outbound_step(
        self,
        text: str,
        options: list[dict[str, str]],
        sender: str,
        kind: str,
        in_reply_to: int | None,
        now: datetime,
        *,
        returning: bool,
    ) -> Step:
        s = self._store
        body = s._enc_json({"text": text, "options": options})
        params = (
            self._row.id,
            self._row.channel,
            None,
            "out",
            sender,
            kind,
            body,
            in_reply_to,
            s._msg_codec.dump("created_at", now),
        )
        return (
            ("row", s._sql_insert_message_returning, params)
            if returning
            else (
                "exec",
                s._sql_insert_message,
                params,
            )
        )

    def add_replies(
        self, replies: Sequence[tuple[str, Sequence[Mapping[str, str]]]], in_reply_to: int
    ) -> None:
        """Store the bot's replies to one message (ids are not needed, so written at commit)."""
        now = utcnow()
        for text, options in replies:
            self._inserts.append(
                self._outbound_step(
                    text,
                    [dict(o) for o in options],
                    "bot",
                    "text",
                    in_reply_to,
                    now,
                    returning=False,
                )
            )

    async def _known_message(self, message_id: int) -> None:
        if message_id in self._msgs:
            return
        await self._autoflush()
        row = await self._lk.one("row", "SELECT id FROM messages WHERE id = ?", (message_id,))
        if row is None:
            raise LookupError(message_id)

    async def set_assessment(
        self, message_id: int, level: int, categories: Sequence[str], detail: Mapping[str, Any]
    ) -> None:
        """Record the detector's result on an inbound message (hits encrypted: they quote it)."""
        await self._known_message(message_id)
        self._msg_changes.setdefault(message_id, {}).update(
            risk_level=level,
            categories=list(categories),
            assessment_enc=self._store._enc_json(dict(detail)),
        )
        self.assessed_level, self.assessed = level, dict(detail)

    async def mark_processed(self, message_id: int) -> None:
        """The inbound message has been answered."""
        await self._known_message(message_id)
        self._msg_changes.setdefault(message_id, {})["processed_at"] = utcnow()

    async def add_event(
        self, type_: str, data: Mapping[str, Any] | None = None, actor: str = "system"
    ) -> None:
        """Append an event in this turn's transaction."""
        self._inserts.append(self._store._event_step(self._row.id, type_, data, actor))

    async def lead_by_code(self, code: str) -> LeadView | None:
        """A lead by its code, read inside the turn."""
        code = normalize_code(code)
        await self._autoflush()
        s = self._store
        row = await self._lk.one("row", s._sql_lead_by_code, (code,))
        return s._lead_view(s._lead_codec.load(row)) if row else None

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
        code = normalize_code(code)
        s = self._store
        codec = s._lead_codec
        (row,) = await self._write_now([("row", s._sql_lead_by_code, (code,))])
        now = utcnow()
        if row is None:
            rec = Rec(
                id=None,
                code=code,
                conversation_id=self._row.id,
                category=None,
                risk_level=risk_level,
                summary_enc=None,
                district_enc=None,
                state="accepted",
                created_at=now,
                updated_at=now,
            )
        else:
            rec = codec.load(row)
            if rec.conversation_id != self._row.id and not linked:
                # Only a conversation the child linked by quoting the code may update it.
                raise ValueError(f"lead code {code} belongs to another conversation")
        rec.risk_level = max(rec.risk_level or 0, risk_level)
        if summary is not None:
            rec.summary_enc = s.vault.encrypt(summary)
        if district is not None:
            rec.district_enc = s.vault.encrypt(district)
        if category is not None:
            rec.category = category
        rec.updated_at = now
        cols: tuple[str, ...] = ("risk_level", "summary_enc", "district_enc", "category")
        cols += ("updated_at",)
        if rec.id is None:
            cols = ("code", "conversation_id", "state", "created_at", *cols)
            params = tuple(codec.dump(c, getattr(rec, c)) for c in cols)
            sql = s._insert_sql("leads", cols) + " RETURNING id"
            (new,) = await self._lk.run([("row", sql, params)])
            rec.id = int(new[0])
        else:
            await self._lk.run([s._update_step(codec, {c: getattr(rec, c) for c in cols}, rec.id)])
        return s._lead_view(rec)


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
