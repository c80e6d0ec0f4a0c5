"""`qingting user add NAME --role ROLE`: create a console account."""

from __future__ import annotations

import asyncio
import secrets
import sys
from typing import TextIO

from bot.config import Settings, open_store
from storage.accounts import Accounts, UserExists, UserView
from storage.migrate import upgrade_sync
from storage.models_accounts import ROLES

GENERATED_BYTES = 15  # token_urlsafe(15) is 20 characters, ~120 bits


def user_add_main(
    name: str,
    role: str,
    stdin: TextIO,
    stdout: TextIO,
    settings: Settings,
    *,
    stderr: TextIO | None = None,
) -> int:
    """Create user NAME; password from piped stdin (first line) or generated and printed once."""
    err = stderr or sys.stderr
    if role not in ROLES:
        print(f"qingting: role must be one of: {', '.join(ROLES)}", file=err)
        return 2
    generated = stdin.isatty()
    if generated:
        password = secrets.token_urlsafe(GENERATED_BYTES)
    else:
        password = stdin.readline().rstrip("\r\n")
        if not password:
            print("qingting: no password on stdin (pipe one line, or run in a terminal)", file=err)
            return 2
    upgrade_sync(settings.database_url)
    try:
        user = asyncio.run(_add(settings, name, role, password))
    except UserExists:
        print(f"qingting: user {name!r} already exists", file=err)
        return 1
    except ValueError as exc:
        print(f"qingting: {exc}", file=err)
        return 2
    print(f"created {user.role} {user.username!r} (id {user.id})", file=stdout)
    if generated:
        print(f"password (shown once, not stored): {password}", file=stdout)
    return 0


async def _add(settings: Settings, name: str, role: str, password: str) -> UserView:
    store = open_store(settings)
    try:
        return await Accounts(store).add_user(name, role, password)
    finally:
        await store.close()
