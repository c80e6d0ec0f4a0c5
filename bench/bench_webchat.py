"""Web chat API throughput: N concurrent children walking the intake script, beside bare aiohttp.

    .venv/bin/python bench/bench_webchat.py [--concurrency 50] [--seconds 20]
        [--max-messages 10000] [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/x]
        [--profile server.prof] [--skip-echo]

Starts the real service (`python -m bot.cli serve`) in a temp var dir, then the same load shape
against a tiny aiohttp echo app; prints msgs/s, p50/p99 latency of POST .../messages, and the
ratio. A PostgreSQL URL names the server only: a fresh database is created there and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    bench_database,
    fmt_ms,
    intake_walk,
    load_note,
    percentile,
    running_echo,
    running_service,
)


@dataclass
class Stats:
    """What the walkers of one run measured."""

    msg_lat: list[float] = field(default_factory=list)
    session_lat: list[float] = field(default_factory=list)
    walks_done: int = 0
    escalated: int = 0  # walks the detector sent to a human (mode left "bot" early)
    errors: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float | None = None

    def error(self, what: str) -> None:
        """Count one failed request by kind."""
        self.errors[what] = self.errors.get(what, 0) + 1


def proc_cpu_seconds(pid: int) -> float | None:
    """User+system CPU seconds used so far by pid (Linux /proc), None when unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def walker(
    http: aiohttp.ClientSession,
    base: str,
    first_walk: int,
    step: int,
    deadline: float,
    budget: list[int],
    stats: Stats,
    *,
    real: bool,
) -> None:
    """Walk the intake script with new sessions until the deadline or the message budget."""
    k = first_walk
    while time.perf_counter() < deadline and budget[0] > 0:
        t0 = time.perf_counter()
        try:
            async with http.post(base + "/api/chat/sessions", json={"lang": "zh-CN"}) as r:
                body = await r.json()
                if r.status != 201:
                    stats.error(f"session {r.status}")
                    continue
        except (TimeoutError, aiohttp.ClientError) as exc:
            stats.error(f"session {type(exc).__name__}")
            continue
        stats.session_lat.append(time.perf_counter() - t0)
        sid, token = body["session_id"], body["token"]
        url = f"{base}/api/chat/sessions/{sid}/messages"
        headers = {"Authorization": f"Bearer {token}"}
        texts = intake_walk(k)
        k += step
        finished = True
        for i, text in enumerate(texts):
            if time.perf_counter() >= deadline or budget[0] <= 0:
                finished = False
                break
            budget[0] -= 1
            t0 = time.perf_counter()
            try:
                async with http.post(
                    url, json={"text": text, "client_message_id": f"m{i}"}, headers=headers
                ) as r:
                    reply = await r.json()
                    status = r.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                stats.error(f"message {type(exc).__name__}")
                finished = False
                break
            stats.msg_lat.append(time.perf_counter() - t0)
            if status != 200:
                stats.error(f"message {status} {reply.get('error', {}).get('code')}")
                finished = False
                break
            if real:
                last = i == len(texts) - 1
                want = "closed" if last else "bot"
                if reply.get("mode") != want:
                    stats.escalated += 1
                    finished = False
                    break
        if finished:
            stats.walks_done += 1


async def run_load(
    base: str,
    concurrency: int,
    seconds: float,
    max_messages: int,
    *,
    real: bool,
    server_pid: int | None,
    offset: int = 0,
) -> Stats:
    """Run `concurrency` walkers against base for `seconds` or `max_messages` messages."""
    stats = Stats()
    budget = [max_messages]
    conn = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as http:
        cpu0, srv0 = time.process_time(), server_pid and proc_cpu_seconds(server_pid)
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(
            *(
                walker(http, base, offset + w, concurrency, deadline, budget, stats, real=real)
                for w in range(concurrency)
            )
        )
        stats.elapsed = time.perf_counter() - start
        stats.client_cpu = time.process_time() - cpu0
        if server_pid and srv0 is not None:
            srv1 = proc_cpu_seconds(server_pid)
            stats.server_cpu = None if srv1 is None else srv1 - srv0
    return stats


def report(name: str, s: Stats) -> float:
    """Print one run's figures; return its messages per second."""
    n = len(s.msg_lat)
    rate = n / s.elapsed if s.elapsed else 0.0
    cpu = f"client CPU {100 * s.client_cpu / s.elapsed:.0f}%"
    if s.server_cpu is not None:
        cpu += f", server CPU {100 * s.server_cpu / s.elapsed:.0f}% (of one core)"
    print(
        f"{name:<10} {rate:8.1f} msgs/s  p50 {fmt_ms(percentile(s.msg_lat, 50)):>7} ms  "
        f"p99 {fmt_ms(percentile(s.msg_lat, 99)):>7} ms  ({n} messages in {s.elapsed:.1f} s; "
        f"sessions p50 {fmt_ms(percentile(s.session_lat, 50))} ms; {cpu})"
    )
    if name.startswith("service"):
        print(f"{'':<10} {s.walks_done} full walks, {s.escalated} left the bot early")
    if s.errors:
        print(f"{'':<10} errors: {s.errors}")
    return rate


def print_profile(path: Path, top: int = 30) -> None:
    """The functions where the server spent its time, by own time and by cumulative time."""
    import pstats

    if not path.exists():
        print(f"no profile written to {path}")
        return
    st = pstats.Stats(str(path))
    st.sort_stats("tottime").print_stats(top)
    st.sort_stats("cumulative").print_stats(top)


async def bench(args: argparse.Namespace) -> int:
    """Run the service, then the echo server, under the same load; print the figures."""
    print(
        f"bench_webchat: {args.concurrency} concurrent conversations, {args.seconds:.0f} s or "
        f"{args.max_messages} messages; {load_note()}"
    )
    async with bench_database(args.database_url) as url:
        real = await bench_service(args, url)
    if args.skip_echo:
        return 0
    async with running_echo() as echo:
        await run_load(echo.base_url, args.concurrency, 1.0, 10**9, real=False, server_pid=None)
        s = await run_load(
            echo.base_url,
            args.concurrency,
            args.seconds,
            args.max_messages,
            real=False,
            server_pid=echo.popen.pid,
        )
    bare = report("echo", s)
    if bare:
        print(
            f"ratio      service / bare aiohttp = {real / bare:.3f} ({bare / real:.1f}x slower)"
            if real
            else "ratio      n/a"
        )
    print(f"target     >= 300 msgs/s: {'met' if real >= 300 else 'MISSED'}; {load_note()}")
    return 0


async def bench_service(args: argparse.Namespace, database_url: str | None) -> float:
    """Start the service on database_url (SQLite in the temp dir when None) and load it."""
    profile: Path | None = args.profile
    async with running_service(database_url=database_url, profile_to=profile) as svc:
        # warm-up, not counted: first assess loads the detector, first turn compiles the script
        await run_load(
            svc.base_url,
            min(args.concurrency, 10),
            2.0,
            200,
            real=True,
            server_pid=None,
            offset=10**6,
        )
        s = await run_load(
            svc.base_url,
            args.concurrency,
            args.seconds,
            args.max_messages,
            real=True,
            server_pid=svc.popen.pid,
        )
        problems = svc.problems() if s.errors else []
    label = "service" + (" (pg)" if database_url and "postgres" in database_url else "")
    rate = report(label, s)
    for line in problems:
        print(f"{'':<10} server log: {line}")
    if profile is not None:
        print_profile(profile)
    return rate


def main() -> int:
    """Parse options and run."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--max-messages", type=int, default=10_000)
    p.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    p.add_argument(
        "--profile",
        type=lambda v: Path(v).resolve(),
        default=None,
        help="run the server under cProfile and print where its time went (stats file here)",
    )
    p.add_argument("--skip-echo", action="store_true", help="measure the service only")
    return asyncio.run(bench(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
