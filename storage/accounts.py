"""Console accounts: users, passwords, lockout, login sessions and the audit log."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from storage.models import utcnow
from storage.models_accounts import ROLES, AuditEntry, ConsoleSession, User
from storage.store import Store, _aware

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MIN_PASSWORD = 8
LOCKOUT_THRESHOLD = 5
LOCKOUT_FOR = timedelta(minutes=15)
SESSION_IDLE = timedelta(hours=2)
SESSION_MAX = timedelta(hours=12)
# Refresh last_seen_at at most this often, so a busy console is not one write per request.
TOUCH_EVERY = timedelta(seconds=60)
# argon2 takes ~64 MiB and tens of ms per hash; bound how many run at once.
HASH_SLOTS = 4


@dataclass(frozen=True)
class UserView:
    """A console user as the rest of the code sees it."""

    id: int
    username: str
    role: str


@dataclass(frozen=True)
class AuditView:
    """One audit row."""

    id: int
    user_id: int | None
    username: str
    action: str
    conversation_id: str | None
    allowed: bool
    detail: dict[str, Any] = field(default_factory=dict)
    ip: str | None = None
    created_at: datetime | None = None


class UserExists(ValueError):
    """A user with that name already exists."""


class LoginFailed(Exception):
    """Wrong username or password, or a disabled account (reason is for the audit log only)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AccountLocked(Exception):
    """Too many failed logins; the account opens again at `until`."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"locked until {until.isoformat()}")
        self.until = until


class Accounts:
    """Repository of console users, their sessions and the audit trail, over the Store's engine."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime] = utcnow,
        hasher: PasswordHasher | None = None,
        session_idle: timedelta = SESSION_IDLE,
        session_max: timedelta = SESSION_MAX,
        lockout_threshold: int = LOCKOUT_THRESHOLD,
        lockout_for: timedelta = LOCKOUT_FOR,
    ) -> None:
        self._store = store
        self._sessions = async_sessionmaker(store.engine, expire_on_commit=False)
        self._clock = clock
        self._hasher = hasher or PasswordHasher()
        self._idle = session_idle
        self._max = session_max
        self._threshold = lockout_threshold
        self._lockout_for = lockout_for
        self._hash_slots = asyncio.Semaphore(HASH_SLOTS)
        # Unknown users are checked against this, so they cost the same time as known ones.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def now(self) -> datetime:
        """The clock this repository uses (injectable for tests)."""
        return self._clock()

    # ---- users ----------------------------------------------------------------------------

    async def add_user(self, username: str, role: str, password: str) -> UserView:
        """Create a user; raises ValueError for a bad name/role/password, UserExists if taken."""
        if not USERNAME_RE.match(username):
            raise ValueError("username: 1-64 letters, digits, '_', '.', '-'")
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"password must be at least {MIN_PASSWORD} characters")
        password_hash = await self._hash(password)

        async def op() -> UserView:
            row = User(
                username=username,
                role=role,
                password_hash=password_hash,
                failed_logins=0,
                disabled=False,
                created_at=self._clock(),
            )
            try:
                async with self._store._tx() as s:
                    s.add(row)
            except IntegrityError as exc:
                raise UserExists(username) from exc
            return _user_view(row)

        return await self._store._retry(op)

    async def get_user(self, user_id: int) -> UserView | None:
        """The user with that id, or None."""

        async def op() -> UserView | None:
            async with self._sessions() as s:
                row = await s.get(User, user_id)
                return _user_view(row) if row else None

        return await self._store._retry(op)

    async def users(self, role: str | None = None) -> list[UserView]:
        """Enabled users, by name, optionally of one role."""

        async def op() -> list[UserView]:
            async with self._sessions() as s:
                q = select(User).where(User.disabled.is_(False)).order_by(User.username)
                if role is not None:
                    q = q.where(User.role == role)
                return [_user_view(r) for r in (await s.execute(q)).scalars()]

        return await self._store._retry(op)

    async def disable_user(self, user_id: int) -> None:
        """Disable an account and end all its sessions at once."""

        async def op() -> None:
            async with self._store._tx() as s:
                await s.execute(update(User).where(User.id == user_id).values(disabled=True))
                await s.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user_id))

        await self._store._retry(op)

    # ---- login ----------------------------------------------------------------------------

    async def authenticate(self, username: str, password: str, ip: str | None = None) -> UserView:
        """The user if the password is right; raises LoginFailed or AccountLocked (audited)."""
        row = await self._load_user(username)
        now = self._clock()
        if row is None:
            await self._verify(self._dummy_hash, password)
            await self._audit_login(None, username, "login.failed", {"reason": "unknown_user"}, ip)
            raise LoginFailed("unknown_user")
        locked_until = _aware(row.locked_until) if row.locked_until else None
        if locked_until is not None and locked_until > now:
            await self._verify(self._dummy_hash, password)
            await self._audit_login(row.id, row.username, "login.locked", {}, ip)
            raise AccountLocked(locked_until)
        ok = await self._verify(row.password_hash, password)
        if ok and row.disabled:
            await self._audit_login(
                row.id, row.username, "login.failed", {"reason": "disabled"}, ip
            )
            raise LoginFailed("disabled")
        if not ok:
            until = await self._record_failure(row.id, now)
            detail: dict[str, Any] = {"reason": "bad_password"}
            if until is not None:
                detail["locked_until"] = until.isoformat()
            await self._audit_login(row.id, row.username, "login.failed", detail, ip)
            if until is not None:
                raise AccountLocked(until)
            raise LoginFailed("bad_password")
        new_hash = None
        if self._hasher.check_needs_rehash(row.password_hash):
            new_hash = await self._hash(password)
        await self._record_success(row.id, new_hash)
        user = _user_view(row)
        await self.audit(user, "login.ok", ip=ip)
        return user

    async def _load_user(self, username: str) -> User | None:
        async def op() -> User | None:
            async with self._sessions() as s:
                q = select(User).where(User.username == username)
                return (await s.execute(q)).scalar_one_or_none()

        return await self._store._retry(op)

    async def _record_failure(self, user_id: int, now: datetime) -> datetime | None:
        """Count a failure atomically; returns the lock end when this one locks the account."""

        async def op() -> datetime | None:
            async with self._store._tx() as s:
                q = select(User).where(User.id == user_id).with_for_update()
                row = (await s.execute(q)).scalar_one()
                row.failed_logins = (row.failed_logins or 0) + 1
                if row.failed_logins < self._threshold:
                    return None
                # Start a fresh count after the lock, so the next window allows 5 tries again.
                row.failed_logins = 0
                row.locked_until = now + self._lockout_for
                return row.locked_until

        return await self._store._retry(op)

    async def _record_success(self, user_id: int, new_hash: str | None) -> None:
        values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
        if new_hash is not None:
            values["password_hash"] = new_hash

        async def op() -> None:
            async with self._store._tx() as s:
                await s.execute(update(User).where(User.id == user_id).values(**values))

        await self._store._retry(op)

    async def _hash(self, password: str) -> str:
        async with self._hash_slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        async with self._hash_slots:
            return await asyncio.to_thread(check)

    # ---- sessions -------------------------------------------------------------------------

    def _csrf_for(self, token: str) -> str:
        # Derived from the session token with the server key (HMAC synchronizer-token pattern):
        # nothing in the database lets anyone compute it.
        return self._store.vault.token_digest("csrf\x00" + token)

    async def create_session(self, user: UserView) -> tuple[str, str]:
        """A new login session for user: (cookie token, CSRF token). Only digests are stored."""
        token = secrets.token_urlsafe(32)
        csrf = self._csrf_for(token)
        now = self._clock()
        row = ConsoleSession(
            id=self._store.vault.token_digest(token),
            user_id=user.id,
            csrf_digest=self._store.vault.token_digest(csrf),
            created_at=now,
            last_seen_at=now,
            expires_at=min(now + self._idle, now + self._max),
        )

        async def op() -> None:
            async with self._store._tx() as s:
                # Sweep expired sessions here: logins are rare, so this costs nothing noticeable.
                await s.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
                s.add(row)

        await self._store._retry(op)
        return token, csrf

    async def session_user(self, token: str) -> tuple[UserView, str] | None:
        """(user, CSRF token) of a live session, sliding its idle expiry; None if not live."""
        if not token:
            return None
        sid = self._store.vault.token_digest(token)
        now = self._clock()

        async def load() -> tuple[ConsoleSession, User] | None:
            async with self._sessions() as s:
                q = select(ConsoleSession, User).join(User, User.id == ConsoleSession.user_id)
                found = (await s.execute(q.where(ConsoleSession.id == sid))).first()
                return (found[0], found[1]) if found else None

        found = await self._store._retry(load)
        if found is None:
            return None
        sess, user = found
        hard_end = _aware(sess.created_at) + self._max
        if user.disabled or _aware(sess.expires_at) <= now or hard_end <= now:
            await self._delete_session(sid)
            return None
        if now - _aware(sess.last_seen_at) >= TOUCH_EVERY:
            expires = min(now + self._idle, hard_end)

            async def touch() -> None:
                async with self._store._tx() as s:
                    await s.execute(
                        update(ConsoleSession)
                        .where(ConsoleSession.id == sid)
                        .values(last_seen_at=now, expires_at=expires)
                    )

            await self._store._retry(touch)
        return _user_view(user), self._csrf_for(token)

    async def end_session(self, token: str) -> None:
        """Log out: the session with this token stops working at once."""
        await self._delete_session(self._store.vault.token_digest(token))

    async def _delete_session(self, sid: str) -> None:
        async def op() -> None:
            async with self._store._tx() as s:
                await s.execute(delete(ConsoleSession).where(ConsoleSession.id == sid))

        await self._store._retry(op)

    # ---- audit ----------------------------------------------------------------------------

    async def audit(
        self,
        user: UserView | None,
        action: str,
        conversation_id: str | None = None,
        allowed: bool = True,
        detail: Mapping[str, Any] | None = None,
        ip: str | None = None,
        *,
        username: str | None = None,
    ) -> None:
        """Append one audit row (detail must never hold child-written text)."""
        row = AuditEntry(
            user_id=user.id if user else None,
            username=(user.username if user else (username or ""))[:64],
            action=action,
            conversation_id=conversation_id,
            allowed=allowed,
            detail=dict(detail or {}),
            ip=ip[:64] if ip else None,
            created_at=self._clock(),
        )

        async def op() -> None:
            async with self._store._tx() as s:
                s.add(row)

        await self._store._retry(op)

    async def _audit_login(
        self,
        user_id: int | None,
        username: str,
        action: str,
        detail: Mapping[str, Any],
        ip: str | None,
    ) -> None:
        user = UserView(user_id, username, "") if user_id is not None else None
        await self.audit(user, action, allowed=False, detail=detail, ip=ip, username=username)

    async def audit_entries(
        self, conversation_id: str | None = None, user_id: int | None = None, limit: int = 200
    ) -> list[AuditView]:
        """Audit rows, newest first, optionally for one conversation and/or one user."""

        async def op() -> list[AuditView]:
            async with self._sessions() as s:
                q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
                if conversation_id is not None:
                    q = q.where(AuditEntry.conversation_id == conversation_id)
                if user_id is not None:
                    q = q.where(AuditEntry.user_id == user_id)
                return [_audit_view(r) for r in (await s.execute(q)).scalars()]

        return await self._store._retry(op)


def _user_view(row: User) -> UserView:
    return UserView(id=row.id, username=row.username, role=row.role)


def _audit_view(r: AuditEntry) -> AuditView:
    return AuditView(
        id=r.id,
        user_id=r.user_id,
        username=r.username,
        action=r.action,
        conversation_id=r.conversation_id,
        allowed=bool(r.allowed),
        detail=dict(r.detail or {}),
        ip=r.ip,
        created_at=_aware(r.created_at) if r.created_at else None,
    )
