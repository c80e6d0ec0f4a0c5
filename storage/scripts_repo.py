"""Uploaded dialogue scripts: every version kept, the newest of each (id, lang) current."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from storage.models import ScriptVersion, utcnow
from storage.store import Store, _aware


@dataclass(frozen=True, slots=True)
class ScriptVersionView:
    """One uploaded version of a script."""

    id: int
    script_id: str
    lang: str
    version: str
    text: str
    uploaded_by: str
    created_at: datetime


class ScriptsRepo:
    """Reads and writes of uploaded scripts."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def save(
        self,
        *,
        script_id: str,
        lang: str,
        version: str,
        text: str,
        uploaded_by: str,
        bump: bool = True,
    ) -> ScriptVersionView:
        """Keep a validated version; saving a known one again makes it the newest if bump."""

        async def op() -> None:
            async with self.store._tx() as s:
                s.add(
                    ScriptVersion(
                        script_id=script_id,
                        lang=lang,
                        version=version,
                        text=text,
                        uploaded_by=uploaded_by,
                        created_at=utcnow(),
                    )
                )

        async def again() -> None:
            # Re-publishing an earlier version (a revert) makes it the newest again, so the
            # next start-up, which loads versions oldest first, keeps it current.
            async with self.store._tx() as s:
                await s.execute(
                    update(ScriptVersion)
                    .where(
                        ScriptVersion.script_id == script_id,
                        ScriptVersion.lang == lang,
                        ScriptVersion.version == version,
                    )
                    .values(created_at=utcnow(), uploaded_by=uploaded_by)
                )

        try:
            await self.store._retry(op)
        except IntegrityError:
            if bump:
                await self.store._retry(again)
        found = await self.get(script_id, lang, version)
        assert found is not None
        return found

    async def get(self, script_id: str, lang: str, version: str) -> ScriptVersionView | None:
        """One version."""
        rows = await self._select(
            ScriptVersion.script_id == script_id,
            ScriptVersion.lang == lang,
            ScriptVersion.version == version,
        )
        return rows[0] if rows else None

    async def all(self) -> list[ScriptVersionView]:
        """Every uploaded version, oldest first (loading them in order leaves the newest current)."""
        return await self._select()

    async def _select(self, *where: Any) -> list[ScriptVersionView]:
        async def op() -> list[ScriptVersionView]:
            async with self.store._sessions() as s:
                q = (
                    select(ScriptVersion)
                    .where(*where)
                    .order_by(ScriptVersion.created_at, ScriptVersion.id)
                )
                return [
                    ScriptVersionView(
                        r.id,
                        r.script_id,
                        r.lang,
                        r.version,
                        r.text,
                        r.uploaded_by,
                        _aware(r.created_at),
                    )
                    for r in (await s.execute(q)).scalars()
                ]

        return await self.store._retry(op)
