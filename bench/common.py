"""Shared helpers of the service benchmarks: start/stop the real service and an echo server.

Everything talks to 127.0.0.1 only. Processes started here are stopped by their pid when the
context manager exits (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
if not Path(PYTHON).exists():  # run from elsewhere: fall back to the running interpreter
    PYTHON = sys.executable
HOST = "127.0.0.1"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# A full walk of dialogs/scripts/intake.zh-CN.yaml that stays with the bot: safe → about → kind
# → story (free text) → when → where (skipped) → talk (no) → summary (ok) → lead → goodbye.
# The story texts are everyday worries the detector scores below "urgent" (checked at run time:
# a walk whose mode leaves "bot" is counted as escalated and stops there).
STORIES = (
    "班里有人给我起外号，我很不开心",
    "下课的时候他们不跟我玩",
    "有人在网上骂我",
    "同学把我的作业本藏起来了",
)
WHERE = ("跳过", "朝阳区", "海淀区")


def intake_walk(n: int) -> list[str]:
    """The texts a child sends to walk the intake script once (option values and free text)."""
    story = f"{STORIES[n % len(STORIES)]}（{n}）"  # distinct text: no cache helps
    return ["yes", "me", "bully", story, "today", WHERE[n % len(WHERE)], "no", "ok"]


URGENT_TEXT = "我不想活了，今晚就吃药"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank) of values; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


def load_note() -> str:
    """The machine's load average and CPU count, to print beside every figure."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min) on {os.cpu_count()} CPUs"


@dataclass
class Proc:
    """A child process started by a benchmark, with where its output goes."""

    popen: subprocess.Popen[bytes]
    log: Path
    base_url: str
    tmp: Path
    extra: dict[str, str] = field(default_factory=dict)

    def problems(self, limit: int = 8) -> list[str]:
        """Distinct ERROR/exception lines the process logged so far (first `limit`)."""
        seen: list[str] = []
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return seen
        for line in text.splitlines():
            if ("ERROR" in line or "Error:" in line or "Exception" in line) and line not in seen:
                seen.append(line[:300])
                if len(seen) >= limit:
                    break
        return seen

    def tail(self, lines: int = 30) -> str:
        """The last lines of the process's output (for error messages)."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _stop(popen: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if popen.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(popen.pid, signal.SIGTERM)
    try:
        popen.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(popen.pid, signal.SIGKILL)
        popen.wait(5)


def spawn(cmd: list[str], env: dict[str, str] | None, log: Path) -> subprocess.Popen[bytes]:
    """Start cmd in the repository root with its output going to log."""
    with log.open("wb") as out:
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def run_cli(args: list[str], stdin: str, env: dict[str, str]) -> None:
    """Run `qingting ARGS` with stdin in env; raise with its stderr if it fails."""
    done = subprocess.run(
        [PYTHON, "-m", "bot.cli", *args],
        input=stdin.encode(),
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"qingting {' '.join(args)} failed: {done.stderr.decode()}")


async def wait_healthy(proc: Proc, path: str, timeout: float = 60.0) -> None:
    """Poll GET path until it answers 200; raise with the process's output if it never does."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"server exited ({proc.popen.returncode}):\n{proc.tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                async with http.get(proc.base_url + path, timeout=aiohttp.ClientTimeout(2)) as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{proc.base_url}{path} not healthy after {timeout:.0f} s:\n{proc.tail()}")


def service_env(
    tmp: Path, database_url: str | None, extra: dict[str, str] | None
) -> dict[str, str]:
    """The environment of the service (and of its CLI) for one benchmark run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QINGTING_")}
    env.update(
        QINGTING_VAR_DIR=str(tmp / "var"),
        QINGTING_SECRET_KEY=secrets.token_urlsafe(32),
        QINGTING_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    if database_url:
        env["QINGTING_DATABASE_URL"] = database_url
    env.update(extra or {})
    return env


@contextlib.asynccontextmanager
async def running_service(
    *,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    setup: Sequence[tuple[list[str], str]] = (),
    profile_to: Path | None = None,
    entry: Sequence[str] = ("-m", "bot.cli"),
) -> AsyncIterator[Proc]:
    """Start `python -m bot.cli serve` in a temp var dir, wait for /healthz, stop it after.

    setup: (qingting CLI arguments, stdin text) run before the server starts, in its env.
    profile_to: run the server under cProfile and write the stats there at exit.
    entry: how python starts the CLI (an experiment may wrap it in its own script).
    """
    with tempfile.TemporaryDirectory(prefix="qt-bench-") as d:
        tmp = Path(d)
        (tmp / "var").mkdir()
        env = service_env(tmp, database_url, extra_env)
        for args, stdin in setup:
            run_cli(args, stdin, env)
        port = free_port()
        log = tmp / "server.log"
        cmd = [PYTHON]
        if profile_to is not None:
            cmd += ["-m", "cProfile", "-o", str(profile_to)]
        cmd += list(entry)
        cmd += ["serve", "--host", HOST, "--port", str(port)]
        env["PYTHONPATH"] = str(ROOT)
        popen = spawn(cmd, env, log)
        proc = Proc(popen, log, f"http://{HOST}:{port}", tmp)
        try:
            await wait_healthy(proc, "/healthz")
            yield proc
        finally:
            # SIGTERM lets aiohttp run cleanup (and cProfile write its stats)
            _stop(popen, grace=30.0 if profile_to else 10.0)


ECHO_SERVER = r"""
import asyncio, sys
from aiohttp import web, WSMsgType

sockets = set()

async def echo(request):
    # one POST route: answer the JSON it got (the session route answers the same shape)
    data = await request.json() if request.can_read_body else {}
    return web.json_response({"echo": data, "session_id": "echo", "token": "t", "replies": []},
                             status=201 if request.path.endswith("/sessions") else 200)

async def ws(request):
    w = web.WebSocketResponse()
    await w.prepare(request)
    sockets.add(w)
    try:
        async for msg in w:
            if msg.type == WSMsgType.TEXT:
                await w.send_str(msg.data)  # plain echo
    finally:
        sockets.discard(w)
    return w

async def push(request):
    # the bare shape of "an HTTP request causes an event on another client's WebSocket"
    data = await request.json()
    for w in list(sockets):
        await w.send_json({"type": "handoff.offered", "conversation": {"id": data.get("id")}})
    return web.json_response({"replies": [], "mode": "waiting"})

async def health(request):
    return web.json_response({"status": "ok"})

app = web.Application()
app.router.add_get("/healthz", health)
app.router.add_get("/ws", ws)
app.router.add_post("/push", push)
app.router.add_post("/{tail:.*}", echo)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


@contextlib.asynccontextmanager
async def running_echo() -> AsyncIterator[Proc]:
    """A bare aiohttp app in a subprocess: POST anything → the JSON it got; /ws echo; /push."""
    with tempfile.TemporaryDirectory(prefix="qt-echo-") as d:
        tmp = Path(d)
        port = free_port()
        log = tmp / "echo.log"
        popen = spawn([PYTHON, "-c", ECHO_SERVER, str(port)], None, log)
        proc = Proc(popen, log, f"http://{HOST}:{port}", tmp)
        try:
            await wait_healthy(proc, "/healthz")
            yield proc
        finally:
            _stop(popen)


@contextlib.asynccontextmanager
async def fresh_postgres_db(url: str) -> AsyncIterator[str]:
    """Create a new database on the server of url, yield url pointing at it, drop it after."""
    import asyncpg  # only when PostgreSQL is asked for

    name = f"qt_bench_{uuid.uuid4().hex[:12]}"
    scheme, rest = url.split("://", 1)
    server = rest.rsplit("/", 1)[0]
    admin = f"postgresql://{server}/postgres"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield f"{scheme}://{server}/{name}"
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def bench_database(url: str | None) -> AsyncIterator[str | None]:
    """The database a benchmark runs on: a fresh one for PostgreSQL (dropped after), else url
    unchanged (None or SQLite: the service makes its own file)."""
    if url and url.startswith("postgresql"):
        async with fresh_postgres_db(url) as fresh:
            yield fresh
    else:
        yield url


def fmt_ms(seconds: float) -> str:
    """Seconds as milliseconds with one decimal."""
    return f"{seconds * 1000:.1f}"
