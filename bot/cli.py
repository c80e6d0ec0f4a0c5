"""The `qingting` command: serve, chat, db upgrade, dialogs validate, assess, eval, user add."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from bot.config import ConfigError, Settings


def _setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("QINGTING_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)  # logs every callback at INFO
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)  # it logs URLs with their secrets


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP service."""
    from aiohttp import web

    from bot.app import build_app
    from dialogs.errors import ScriptError

    settings = Settings.from_env(host=args.host, port=args.port)
    try:
        app = build_app(settings)
    except ScriptError as exc:
        print(f"qingting: a dialogue script is invalid, not starting:\n{exc}", file=sys.stderr)
        return 2
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,
        loop=new_event_loop(),
    )
    return 0


def cmd_db_upgrade(_args: argparse.Namespace) -> int:
    """Apply database migrations."""
    from storage.migrate import upgrade_sync

    settings = Settings.from_env()
    upgrade_sync(settings.database_url)
    print(f"database is up to date ({_safe_url(settings.database_url)})")
    return 0


def cmd_db_purge(args: argparse.Namespace) -> int:
    """Purge what children wrote in conversations closed more than --days ago."""
    from datetime import timedelta

    from bot.config import open_store
    from storage.models import utcnow
    from storage.retention import purge_closed

    settings = Settings.from_env()
    days = settings.retention_days if args.days is None else args.days
    if days <= 0:
        print("retention is off (QINGTING_RETENTION_DAYS=0): nothing purged")
        return 0

    async def run() -> int:
        store = open_store(settings)
        try:
            return await purge_closed(store, utcnow() - timedelta(days=days))
        finally:
            await store.close()

    n = asyncio.run(run())
    print(f"purged {n} conversation(s) closed more than {days:g} days ago")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate dialogue script files."""
    from dialogs.cli import validate_main

    return validate_main(args.files, sys.stdout)


def cmd_assess(_args: argparse.Namespace) -> int:
    """Assess JSON lines from stdin."""
    from nlp.cli import assess_main

    return assess_main(sys.stdin, sys.stdout)


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate the detector on a labelled file."""
    from nlp.cli import eval_main

    return eval_main(args.file, sys.stdout, sys.stderr)


def cmd_chat(args: argparse.Namespace) -> int:
    """Chat with the pipeline in the terminal (numbered options; type a number to pick one)."""
    from bot.terminal import run_terminal_chat

    settings = Settings.from_env()
    return asyncio.run(run_terminal_chat(settings, lang=args.lang, script=args.script))


def cmd_user_add(args: argparse.Namespace) -> int:
    """Create a console account (password from stdin, or generated and printed once)."""
    from bot.console.users_cli import user_add_main

    return user_add_main(args.name, args.role, sys.stdin, sys.stdout, Settings.from_env())


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (Linux, macOS): the same asyncio API, a faster loop."""
    try:
        import uvloop
    except ImportError:  # e.g. Windows: the standard loop works the same, only slower
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _safe_url(url: str) -> str:
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `qingting`."""
    p = argparse.ArgumentParser(prog="qingting", description="Qingting (倾听) chat intake service")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the HTTP service")
    s.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=None, help="port (default 8080)")
    s.set_defaults(func=cmd_serve)

    c = sub.add_parser("chat", help="try the dialogue in the terminal")
    c.add_argument("--lang", default="zh-CN", choices=["zh-CN", "zh-TW", "en"])
    c.add_argument("--script", default="intake")
    c.set_defaults(func=cmd_chat)

    db = sub.add_parser("db", help="database maintenance")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    dbsub.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)
    pg = dbsub.add_parser("purge", help="drop children's words from long-closed conversations")
    pg.add_argument("--days", type=float, default=None, help="default QINGTING_RETENTION_DAYS")
    pg.set_defaults(func=cmd_db_purge)

    d = sub.add_parser("dialogs", help="dialogue scripts")
    dsub = d.add_subparsers(dest="dialogs_command", required=True)
    v = dsub.add_parser("validate", help="check script files")
    v.add_argument("files", nargs="+")
    v.set_defaults(func=cmd_validate)

    u = sub.add_parser("user", help="console accounts")
    usub = u.add_subparsers(dest="user_command", required=True)
    ua = usub.add_parser("add", help="add a volunteer, supervisor or admin")
    ua.add_argument("name")
    ua.add_argument("--role", required=True, choices=["volunteer", "supervisor", "admin"])
    ua.set_defaults(func=cmd_user_add)

    a = sub.add_parser("assess", help="assess JSON lines from stdin")
    a.set_defaults(func=cmd_assess)
    ev = sub.add_parser("eval", help="measure the detector on a labelled JSONL file")
    ev.add_argument("file")
    ev.set_defaults(func=cmd_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    _setup_logging()
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"qingting: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["build_parser", "main"]
