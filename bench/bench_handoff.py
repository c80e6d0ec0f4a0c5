"""Handoff offer latency: a child's urgent message → "handoff.offered" on a volunteer's console.

    .venv/bin/python bench/bench_handoff.py [--urgent 200] [--background 200] [--think 10]
        [--gap 0.05] [--max-seconds 90] [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/x]

Starts the real service, adds a volunteer with the CLI, logs in and opens the console
WebSocket (available, accepting nothing, so every offer reaches it). While `--background`
conversations walk the intake script at a child's pace (a message every ~`--think` s), it opens
`--urgent` conversations one after another and times POST of the urgent text → the offer for
that conversation on the WebSocket. Then the same shape against a bare aiohttp app (POST →
push on a WebSocket), and the in-process event bus alone, as references.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import (
    URGENT_TEXT,
    bench_database,
    fmt_ms,
    intake_walk,
    load_note,
    percentile,
    running_echo,
    running_service,
)

TARGET_P99 = 0.050
OFFER_TIMEOUT = 10.0  # seconds; an offer later than this counts as missed
VOLUNTEER = "bench_volunteer"
# No SLA re-offers or reminders during the run: they are other events, not the first offer.
QUIET_TIMERS = {
    "QINGTING_SLA_URGENT_SECONDS": "3600",
    "QINGTING_SLA_IMMINENT_SECONDS": "3600",
    "QINGTING_REASSURE_SECONDS": "3600",
}


@dataclass
class Background:
    """The other children's conversations: what they sent and how long the answers took."""

    lat: list[float] = field(default_factory=list)
    escalated: int = 0
    errors: int = 0
    started: float = 0.0
    stopped: float = 0.0


@dataclass
class Offers:
    """First offer arrival time per conversation id, and who is waiting for which."""

    seen: dict[str, float] = field(default_factory=dict)
    waiters: dict[str, asyncio.Future[float]] = field(default_factory=dict)
    other_events: int = 0

    def arrived(self, cid: str, at: float) -> None:
        """Record the first offer of cid and wake whoever waits for it."""
        if cid in self.seen:
            return
        self.seen[cid] = at
        fut = self.waiters.pop(cid, None)
        if fut is not None and not fut.done():
            fut.set_result(at)

    def expect(self, cid: str) -> asyncio.Future[float]:
        """A future resolved with the arrival time of cid's first offer."""
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if cid in self.seen:
            fut.set_result(self.seen[cid])
        else:
            self.waiters[cid] = fut
        return fut


async def read_offers(ws: aiohttp.ClientWebSocketResponse, offers: Offers) -> None:
    """Timestamp each handoff.offered as soon as its frame is read."""
    async for msg in ws:
        at = time.perf_counter()
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        data: dict[str, Any] = msg.json()
        if data.get("type") == "handoff.offered":
            offers.arrived(str(data.get("conversation", {}).get("id")), at)
        else:
            offers.other_events += 1


async def child_walks(
    http: aiohttp.ClientSession,
    base: str,
    n: int,
    think: float,
    stop: asyncio.Event,
    bg: Background,
    *,
    real: bool,
) -> None:
    """One background child: walk the intake script at a child's pace until stop is set."""
    rng = random.Random(n)
    await asyncio.sleep(rng.uniform(0, think))  # spread the starts
    k = n
    while not stop.is_set():
        try:
            async with http.post(base + "/api/chat/sessions", json={"lang": "zh-CN"}) as r:
                body = await r.json()
            headers = {"Authorization": f"Bearer {body['token']}"}
            url = f"{base}/api/chat/sessions/{body['session_id']}/messages"
            texts = intake_walk(k)
            k += 100_003
            for i, text in enumerate(texts):
                await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))
                if stop.is_set():
                    return
                t0 = time.perf_counter()
                payload = {"text": text, "client_message_id": f"m{i}"}
                async with http.post(url, json=payload, headers=headers) as r:
                    reply = await r.json()
                    ok = r.status == 200
                bg.lat.append(time.perf_counter() - t0)
                if not ok:
                    bg.errors += 1
                    break
                if real and reply.get("mode") not in ("bot", "closed"):
                    bg.escalated += 1  # the detector sent this walk to a human; start anew
                    break
        except (TimeoutError, aiohttp.ClientError, KeyError):
            bg.errors += 1
            await asyncio.sleep(0.5)


@dataclass
class UrgentResult:
    """Offer latencies and what the child's POST answered."""

    offer: list[float] = field(default_factory=list)
    post: list[float] = field(default_factory=list)
    before_answer: int = 0  # offers that arrived before the HTTP answer did
    missed: int = 0
    modes: dict[str, int] = field(default_factory=dict)
    cut_short: bool = False  # --max-seconds ran out before --urgent conversations


async def urgent_children(
    http: aiohttp.ClientSession,
    base: str,
    count: int,
    gap: float,
    offers: Offers,
    max_seconds: float,
    *,
    real: bool,
) -> UrgentResult:
    """Open `count` conversations one after another; time urgent text → offer for each."""
    res = UrgentResult()
    stop_at = time.perf_counter() + max_seconds
    for n in range(count):
        if time.perf_counter() > stop_at:
            res.cut_short = True
            break
        if real:
            async with http.post(base + "/api/chat/sessions", json={"lang": "zh-CN"}) as r:
                body = await r.json()
            cid = body["session_id"]
            url = f"{base}/api/chat/sessions/{cid}/messages"
            headers = {"Authorization": f"Bearer {body['token']}"}
            payload: dict[str, Any] = {"text": URGENT_TEXT, "client_message_id": "u1"}
        else:
            cid = f"echo{n}"
            url, headers, payload = base + "/push", {}, {"id": cid}
        await asyncio.sleep(gap)
        fut = offers.expect(cid)
        t0 = time.perf_counter()
        async with http.post(url, json=payload, headers=headers) as r:
            reply = await r.json()
        answered = time.perf_counter()
        res.post.append(answered - t0)
        mode = str(reply.get("mode"))
        res.modes[mode] = res.modes.get(mode, 0) + 1
        try:
            at = await asyncio.wait_for(fut, OFFER_TIMEOUT)
        except TimeoutError:
            res.missed += 1
            offers.waiters.pop(cid, None)
            continue
        res.offer.append(at - t0)
        res.before_answer += at <= answered
        if (n + 1) % 50 == 0:
            print(
                f"  ... {n + 1}/{count} urgent, offer p50 so far "
                f"{fmt_ms(percentile(res.offer, 50))} ms",
                file=sys.stderr,
                flush=True,
            )
    return res


async def login(http: aiohttp.ClientSession, base: str, password: str) -> None:
    """Log the volunteer in (the session cookie lands in http's cookie jar)."""
    body = {"username": VOLUNTEER, "password": password}
    async with http.post(base + "/api/console/login", json=body) as r:
        if r.status != 200:
            raise RuntimeError(f"login failed: {r.status} {await r.text()}")


async def run_shape(
    base: str, args: argparse.Namespace, *, real: bool, password: str = ""
) -> tuple[UrgentResult, Background, Offers]:
    """Volunteer WS + background children + urgent children against base."""
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1 (an IP address)
    conn = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(cookie_jar=jar, connector=conn, timeout=timeout) as http:
        if real:
            await login(http, base, password)
        offers = Offers()
        ws = await http.ws_connect(
            base + ("/api/console/ws" if real else "/ws"), headers={"Origin": base}
        )
        if real:
            hello = await ws.receive_json(timeout=10)
            if hello.get("type") != "hello":
                raise RuntimeError(f"console WebSocket said {hello!r}")
        reader = asyncio.create_task(read_offers(ws, offers))
        stop = asyncio.Event()
        bg = Background(started=time.perf_counter())
        children = [
            asyncio.create_task(child_walks(http, base, n, args.think, stop, bg, real=real))
            for n in range(args.background)
        ]
        try:
            await asyncio.sleep(min(args.think, 5.0))  # let the background reach its pace
            res = await urgent_children(
                http, base, args.urgent, args.gap, offers, args.max_seconds, real=real
            )
        finally:
            stop.set()
            bg.stopped = time.perf_counter()
            if children:
                await asyncio.wait(children, timeout=30)
            for t in children:
                t.cancel()
            await ws.close()
            reader.cancel()
    return res, bg, offers


def report(name: str, res: UrgentResult, bg: Background) -> float:
    """Print one shape's figures; return the offer p99 in seconds."""
    p99 = percentile(res.offer, 99)
    span = max(bg.stopped - bg.started, 1e-9)
    print(
        f"{name:<9} offer p50 {fmt_ms(percentile(res.offer, 50)):>7} ms  "
        f"p99 {fmt_ms(p99):>7} ms  max {fmt_ms(max(res.offer, default=float('nan')))} ms  "
        f"({len(res.offer)} offers, {res.missed} missed (none {OFFER_TIMEOUT:.0f} s after the answer); "
        f"{res.before_answer} arrived before the HTTP answer)"
        + (" — cut short by --max-seconds" if res.cut_short else "")
    )
    print(
        f"{'':<9} urgent POST p50 {fmt_ms(percentile(res.post, 50))} ms "
        f"p99 {fmt_ms(percentile(res.post, 99))} ms; modes {res.modes}"
    )
    print(
        f"{'':<9} background: {len(bg.lat) / span:.1f} msgs/s from {len(bg.lat)} messages, "
        f"p50 {fmt_ms(percentile(bg.lat, 50))} ms p99 {fmt_ms(percentile(bg.lat, 99))} ms, "
        f"{bg.escalated} walks escalated, {bg.errors} errors"
    )
    return p99


async def bus_reference(n: int = 2000) -> None:
    """publish → receive latency of the in-process bus alone, in this process."""
    from handoff.bus import InProcessBus

    bus = InProcessBus()
    await bus.start()
    lat: list[float] = []
    async with bus.subscribe("volunteer.1") as sub:
        it = sub.__aiter__()
        for i in range(n):
            t0 = time.perf_counter()
            await bus.publish("volunteer.1", {"type": "handoff.offered", "conversation": {"id": i}})
            await it.__anext__()
            lat.append(time.perf_counter() - t0)
    await bus.close()
    print(
        f"{'bus':<9} in-process publish→receive p50 {percentile(lat, 50) * 1e6:.0f} µs "
        f"p99 {percentile(lat, 99) * 1e6:.0f} µs ({n} events, no other load)"
    )


async def bench(args: argparse.Namespace) -> int:
    """Measure the service, then the references."""
    print(
        f"bench_handoff: {args.urgent} urgent conversations (one every ~{args.gap:.2f} s + "
        f"round trip) while {args.background} others walk the intake (a message every "
        f"~{args.think:.1f} s each); {load_note()}"
    )
    async with bench_database(args.database_url) as url:
        p99 = await bench_service(args, url)
    if not args.skip_reference:
        async with running_echo() as echo:
            res, bg, _ = await run_shape(echo.base_url, args, real=False)
        report("bare", res, bg)
        await bus_reference()
    verdict = "met" if p99 <= TARGET_P99 else "MISSED"
    print(f"target    offer p99 <= {TARGET_P99 * 1000:.0f} ms: {verdict}; {load_note()}")
    return 0


async def bench_service(args: argparse.Namespace, database_url: str | None) -> float:
    """Start the service with one volunteer and run the shape against it."""
    password = secrets.token_urlsafe(16)
    setup = [(["user", "add", VOLUNTEER, "--role", "volunteer"], password + "\n")]
    async with running_service(
        database_url=database_url, extra_env=QUIET_TIMERS, setup=setup
    ) as svc:
        res, bg, offers = await run_shape(svc.base_url, args, real=True, password=password)
        problems = svc.problems() if (res.missed or bg.errors) else []
    label = "service" + (" pg" if database_url and "postgres" in database_url else "")
    p99 = report(label, res, bg)
    print(f"{'':<9} other console events: {offers.other_events}")
    for line in problems:
        print(f"{'':<9} server log: {line}")
    return p99


def main() -> int:
    """Parse options and run."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--urgent", type=int, default=200, help="urgent conversations to time")
    p.add_argument("--background", type=int, default=200, help="other conversations meanwhile")
    p.add_argument("--think", type=float, default=10.0, help="mean s between a child's messages")
    p.add_argument("--gap", type=float, default=0.05, help="s between urgent conversations")
    p.add_argument("--max-seconds", type=float, default=90.0, help="cap on the urgent phase")
    p.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    p.add_argument("--skip-reference", action="store_true", help="measure the service only")
    return asyncio.run(bench(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
