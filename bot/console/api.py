"""The volunteer console's API: queue, transcript, accept, relay, transfer, release, close, leads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import WSMsgType, web

from bot.console.auth import (
    ACCOUNTS,
    COOKIE,
    audit_request,
    check_ws_origin,
    current_user,
    deny,
    require,
    setup_auth,
    user_json,
)
from bot.console.scripts_api import setup_scripts
from bot.errors import ApiError, json_object
from bot.keys import HANDOFF, STORE
from handoff.service import (
    CONSOLE_TOPIC,
    SUPERVISORS_TOPIC,
    HandoffConflict,
    NotHolder,
    conversation_card,
    volunteer_topic,
)
from storage.accounts import UserView
from storage.handoff_repo import LEAD_CATEGORIES, LEAD_STATES, InvalidTransition
from storage.views import ConversationView

log = logging.getLogger(__name__)

OPEN_CONSOLES = web.AppKey("open_consoles", dict[int, int])  # user id -> sockets in this process
BEAT_SECONDS = 15.0  # how often a console socket renews presence and re-checks its login
HELPERS = ("volunteer", "supervisor")  # who talks with children
OVERSEERS = ("supervisor",)  # who may read every conversation
MAX_VOLUNTEER_TEXT = 2000


def setup_console(app: web.Application) -> None:
    """Mount login (auth) and every console route."""
    setup_auth(app)
    setup_scripts(app)
    app[OPEN_CONSOLES] = {}
    app.router.add_routes(
        [
            web.post("/api/console/presence", presence),
            web.get("/api/console/queue", queue),
            web.get("/api/console/conversations", my_conversations),
            web.get("/api/console/conversations/{id}", conversation),
            web.post("/api/console/conversations/{id}/accept", accept),
            web.post("/api/console/conversations/{id}/messages", send_message),
            web.post("/api/console/conversations/{id}/transfer", transfer),
            web.post("/api/console/conversations/{id}/release", release),
            web.post("/api/console/conversations/{id}/close", close),
            web.post("/api/console/conversations/{id}/request", request_human),
            web.post("/api/console/conversations/{id}/notes", add_note),
            web.post("/api/console/conversations/{id}/hits", mark_hit),
            web.get("/api/console/users", users),
            web.get("/api/console/canned", canned),
            web.post("/api/console/canned", save_canned),
            web.delete("/api/console/canned/{cid}", delete_canned),
            web.get("/api/console/leads", leads),
            web.get("/api/console/leads/{lid}", lead),
            web.post("/api/console/leads/{lid}/state", lead_state),
            web.get("/api/console/reports/hits", hit_report),
            web.get("/api/console/ws", console_ws),
        ]
    )


async def _visible(request: web.Request, user: UserView, conv_id: str) -> ConversationView:
    """The conversation if this user may read it; otherwise 403, audited."""
    conv = await request.app[STORE].get_conversation(conv_id)
    if conv is None:
        raise ApiError(404, "unknown_conversation", "No such conversation.")
    if user.role in OVERSEERS:
        return conv
    if user.role == "volunteer" and await request.app[HANDOFF].repo.has_held(user.id, conv_id):
        return conv
    await deny(request, user, "transcript.denied", conversation_id=conv_id)


def _text(body: dict[str, Any], key: str = "text", limit: int = MAX_VOLUNTEER_TEXT) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"invalid_{key}", f"'{key}' must be a non-empty string.")
    if len(value) > limit:
        raise ApiError(413, f"{key}_too_long", f"'{key}' is longer than {limit} characters.")
    return value.strip()


@require(*HELPERS)
async def presence(request: web.Request) -> web.Response:
    """POST /api/console/presence {"status": "available" | "away"}."""
    user = await current_user(request)
    status = (await json_object(request)).get("status")
    if status not in ("available", "away"):
        raise ApiError(400, "invalid_status", "'status' must be 'available' or 'away'.")
    await request.app[HANDOFF].set_status(user.id, status)
    return web.json_response({"status": status})


@require(*HELPERS)
async def queue(request: web.Request) -> web.Response:
    """GET /api/console/queue: waiting conversations in the order they will be served."""
    return web.json_response({"queue": await request.app[HANDOFF].queue()})


@require(*HELPERS)
async def my_conversations(request: web.Request) -> web.Response:
    """GET /api/console/conversations: what I hold now (supervisors: every live chat)."""
    user = await current_user(request)
    store = request.app[STORE]
    if user.role in OVERSEERS:
        convs = await store.list_conversations(modes=["human", "waiting"])
    else:
        convs = await store.list_conversations(modes=["human"], assigned_to=user.id)
    return web.json_response({"conversations": [conversation_card(c) for c in convs]})


@require(*HELPERS)
async def conversation(request: web.Request) -> web.Response:
    """GET /api/console/conversations/{id}: transcript with hits, slots, notes; audited."""
    user = await current_user(request)
    conv = await _visible(request, user, request.match_info["id"])
    store, handoff = request.app[STORE], request.app[HANDOFF]
    transcript = await store.transcript(conv.id)
    marks = await handoff.repo.hit_marks([m.id for m in transcript if m.direction == "in"])
    await audit_request(request, user, "transcript.read", conversation_id=conv.id)
    messages = []
    for m in transcript:
        hits = []
        for i, h in enumerate((m.assessment or {}).get("hits", [])):
            hits.append({**h, "index": i, "verdict": marks.get((m.id, i))})
        messages.append(
            {
                "id": m.id,
                "direction": m.direction,
                "sender": m.sender,
                "kind": m.kind,
                "text": m.text,
                "risk_level": m.risk_level,
                "hits": hits,
                "created_at": m.created_at.isoformat() if m.created_at else None,
            }
        )
    slots = dict(conv.slots)
    return web.json_response(
        {
            "conversation": conversation_card(conv),
            "messages": messages,
            "slots": slots,
            "summary": slots.get("summary_text") or _summary(slots),
            "notes": [
                {"id": n.id, "user_id": n.user_id, "text": n.text, "at": n.created_at.isoformat()}
                for n in await handoff.repo.notes(conv.id)
            ],
            "leads": [_lead_json(x) for x in await _leads_of(store, conv)],
            # Why the child may not have seen replies (set by the channel, e.g. WeChat's
            # 48-hour window or send quota): shown to the volunteer, never lost silently.
            "delivery": {
                "blocked": conv.flags.get("wechat_reply_blocked"),
                "undelivered": conv.flags.get("wechat_undelivered"),
            },
        }
    )


async def _leads_of(store: Any, conv: ConversationView) -> list[Any]:
    """The conversation's own leads, and the earlier case the child came back to."""
    found = await store.leads_for(conv.id)
    code = conv.flags.get("returning_lead")
    if code and all(x.code != code for x in found):
        earlier = await store.lead_by_code(str(code))
        if earlier is not None:
            found.insert(0, earlier)
    return found


def _summary(slots: dict[str, Any]) -> str:
    keys = ("about", "kind", "story", "when", "where")
    return "\n".join(f"{k}: {slots[k]}" for k in keys if slots.get(k))


async def _act(request: web.Request, action: str, coro: Any) -> Any:
    """Run a handoff action, mapping its refusals to 409 / 403 (audited)."""
    try:
        return await coro
    except HandoffConflict as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    except NotHolder:
        user = await current_user(request)
        await deny(request, user, f"{action}.denied", conversation_id=request.match_info["id"])
    except LookupError as exc:
        raise ApiError(404, "unknown_conversation", "No such conversation.") from exc


@require(*HELPERS)
async def accept(request: web.Request) -> web.Response:
    """POST .../accept: first to accept wins; anyone later gets 409."""
    user = await current_user(request)
    conv = await _act(
        request,
        "accept",
        request.app[HANDOFF].accept(request.match_info["id"], user.id, user.username),
    )
    await audit_request(request, user, "handoff.accept", conversation_id=conv.id)
    return web.json_response({"conversation": conversation_card(conv)})


@require(*HELPERS)
async def send_message(request: web.Request) -> web.Response:
    """POST .../messages {"text"}: the volunteer's words, delivered through the child's channel."""
    user = await current_user(request)
    text = _text(await json_object(request))
    msg = await _act(
        request, "message", request.app[HANDOFF].send(request.match_info["id"], user.id, text)
    )
    return web.json_response({"message": {"id": msg.id, "text": msg.text, "sender": msg.sender}})


@require(*HELPERS)
async def transfer(request: web.Request) -> web.Response:
    """POST .../transfer {"to": user id or username}: to another volunteer or a supervisor."""
    user = await current_user(request)
    to = (await json_object(request)).get("to")
    accounts = request.app[ACCOUNTS]
    target = None
    if isinstance(to, int) and not isinstance(to, bool):
        target = await accounts.get_user(to)
    elif isinstance(to, str):
        target = next((u for u in await accounts.users() if u.username == to), None)
    if target is None or target.role not in HELPERS or target.id == user.id:
        raise ApiError(400, "invalid_target", "'to' must name another volunteer or supervisor.")
    if target.id not in {p.user_id for p in await request.app[HANDOFF].online()}:
        # The bot stays quiet while a person holds the chat: handing it to someone with no
        # console open would leave the child in silence until the holder timeout re-queues it.
        raise ApiError(409, "target_offline", f"{target.username} has no console open.")
    conv = await _act(
        request,
        "transfer",
        request.app[HANDOFF].transfer(request.match_info["id"], user.id, user.username, target.id),
    )
    await audit_request(
        request, user, "handoff.transfer", conversation_id=conv.id, detail={"to": target.id}
    )
    return web.json_response({"conversation": conversation_card(conv), "to": user_json(target)})


@require(*HELPERS)
async def release(request: web.Request) -> web.Response:
    """POST .../release: back to the bot."""
    user = await current_user(request)
    conv = await _act(
        request,
        "release",
        request.app[HANDOFF].release(request.match_info["id"], user.id, user.username),
    )
    return web.json_response({"conversation": conversation_card(conv)})


@require(*HELPERS)
async def close(request: web.Request) -> web.Response:
    """POST .../close {"category", "summary", "district"?}: end the chat, record the lead."""
    user = await current_user(request)
    body = await json_object(request)
    category = body.get("category")
    if category not in LEAD_CATEGORIES:
        raise ApiError(
            400, "invalid_category", f"'category' must be one of {', '.join(LEAD_CATEGORIES)}."
        )
    summary = _text(body, "summary", 10_000)
    district = body.get("district")
    if district is not None and not isinstance(district, str):
        raise ApiError(400, "invalid_district", "'district' must be a string.")
    lead_view = await _act(
        request,
        "close",
        request.app[HANDOFF].close(
            request.match_info["id"],
            user.id,
            user.username,
            category=category,
            summary=summary,
            district=district,
        ),
    )
    await audit_request(
        request, user, "conversation.close", conversation_id=lead_view.conversation_id
    )
    return web.json_response({"lead": _lead_json(lead_view)})


@require(*OVERSEERS)
async def request_human(request: web.Request) -> web.Response:
    """POST .../request: a supervisor puts a bot conversation in the queue."""
    user = await current_user(request)
    conv_id = request.match_info["id"]
    await _act(request, "request", request.app[HANDOFF].request(conv_id, by=user.username))
    await audit_request(request, user, "handoff.request", conversation_id=conv_id)
    return web.json_response({"ok": True})


@require(*HELPERS)
async def add_note(request: web.Request) -> web.Response:
    """POST .../notes {"text"}."""
    user = await current_user(request)
    conv = await _visible(request, user, request.match_info["id"])
    note = await request.app[HANDOFF].repo.add_note(
        conv.id, user.id, _text(await json_object(request), limit=10_000)
    )
    return web.json_response({"note": {"id": note.id, "text": note.text}}, status=201)


@require(*HELPERS)
async def mark_hit(request: web.Request) -> web.Response:
    """POST .../hits {"message_id", "index", "verdict": "confirmed" | "false_alarm"}."""
    user = await current_user(request)
    conv = await _visible(request, user, request.match_info["id"])
    body = await json_object(request)
    verdict, index, message_id = body.get("verdict"), body.get("index"), body.get("message_id")
    if verdict not in ("confirmed", "false_alarm"):
        raise ApiError(400, "invalid_verdict", "'verdict' must be 'confirmed' or 'false_alarm'.")
    if not isinstance(index, int) or not isinstance(message_id, int):
        raise ApiError(400, "invalid_hit", "'message_id' and 'index' must be integers.")
    msg = await request.app[STORE].get_message(message_id)
    hits = (msg.assessment or {}).get("hits", []) if msg else []
    if msg is None or msg.conversation_id != conv.id or not 0 <= index < len(hits):
        raise ApiError(404, "unknown_hit", "No such hit in this conversation.")
    hit = hits[index]
    await request.app[HANDOFF].repo.mark_hit(
        message_id,
        index,
        rule=str(hit.get("rule", "")),
        category=str(hit.get("category", "")),
        verdict=verdict,
        user_id=user.id,
    )
    return web.json_response({"verdict": verdict})


@require(*HELPERS)
async def users(request: web.Request) -> web.Response:
    """GET /api/console/users: colleagues one can transfer to, with who is online."""
    online = {p.user_id: p for p in await request.app[HANDOFF].online()}
    people = []
    for u in await request.app[ACCOUNTS].users():
        if u.role in HELPERS:
            p = online.get(u.id)
            people.append(
                {**user_json(u), "online": p is not None, "status": p.status if p else "offline"}
            )
    return web.json_response({"users": people})


@require("volunteer", "supervisor", "admin")
async def canned(request: web.Request) -> web.Response:
    """GET /api/console/canned?lang=zh-CN."""
    lang = request.query.get("lang") or None
    return web.json_response({"canned": await request.app[HANDOFF].repo.canned(lang)})


@require("admin")
async def save_canned(request: web.Request) -> web.Response:
    """POST /api/console/canned {"id"?, "lang", "title", "text"} (admins)."""
    user = await current_user(request)
    body = await json_object(request)
    lang = body.get("lang", "zh-CN")
    if lang not in ("zh-CN", "zh-TW", "en"):
        raise ApiError(400, "invalid_lang", "'lang' must be zh-CN, zh-TW or en.")
    reply_id = body.get("id")
    if reply_id is not None and not isinstance(reply_id, int):
        raise ApiError(400, "invalid_id", "'id' must be an integer.")
    try:
        saved = await request.app[HANDOFF].repo.save_canned(
            reply_id=reply_id, lang=lang, title=_text(body, "title", 100), text=_text(body)
        )
    except LookupError as exc:
        raise ApiError(404, "unknown_canned", "No such canned reply.") from exc
    await audit_request(request, user, "canned.save", detail={"id": saved["id"]})
    return web.json_response({"canned": saved})


@require("admin")
async def delete_canned(request: web.Request) -> web.Response:
    """DELETE /api/console/canned/{cid} (admins)."""
    try:
        cid = int(request.match_info["cid"])
    except ValueError as exc:
        raise ApiError(404, "unknown_canned", "No such canned reply.") from exc
    if not await request.app[HANDOFF].repo.delete_canned(cid):
        raise ApiError(404, "unknown_canned", "No such canned reply.")
    await audit_request(request, await current_user(request), "canned.delete", detail={"id": cid})
    return web.json_response({"deleted": cid})


def _lead_json(x: Any) -> dict[str, Any]:
    return {
        "id": x.id,
        "code": x.code,
        "conversation_id": x.conversation_id,
        "category": x.category,
        "risk_level": x.risk_level,
        "summary": x.summary,
        "district": x.district,
        "state": x.state,
        "created_at": x.created_at.isoformat(),
        "updated_at": x.updated_at.isoformat(),
    }


async def _lead_visible(request: web.Request, user: UserView, lead_id: int) -> Any:
    found = await request.app[HANDOFF].repo.get_lead(lead_id)
    if found is None:
        raise ApiError(404, "unknown_lead", "No such lead.")
    await _visible(request, user, found.conversation_id)
    return found


@require(*HELPERS)
async def leads(request: web.Request) -> web.Response:
    """GET /api/console/leads: mine (volunteers) or all (supervisors)."""
    user = await current_user(request)
    repo = request.app[HANDOFF].repo
    ids = None if user.role in OVERSEERS else await repo.held_ids(user.id)
    found = await repo.leads(ids)
    return web.json_response({"leads": [_lead_json(x) for x in found], "states": LEAD_STATES})


def _lead_id(request: web.Request) -> int:
    try:
        return int(request.match_info["lid"])
    except ValueError as exc:
        raise ApiError(404, "unknown_lead", "No such lead.") from exc


@require(*HELPERS)
async def lead(request: web.Request) -> web.Response:
    """GET /api/console/leads/{lid}: the lead and its history."""
    user = await current_user(request)
    found = await _lead_visible(request, user, _lead_id(request))
    history = await request.app[HANDOFF].repo.lead_history(found.id)
    await audit_request(request, user, "lead.read", conversation_id=found.conversation_id)
    return web.json_response({"lead": _lead_json(found), "history": history})


@require(*HELPERS)
async def lead_state(request: web.Request) -> web.Response:
    """POST /api/console/leads/{lid}/state {"state", "note"}: one step of the work-order cycle."""
    user = await current_user(request)
    found = await _lead_visible(request, user, _lead_id(request))
    body = await json_object(request)
    state, note = body.get("state"), body.get("note")
    if note is not None and not isinstance(note, str):
        raise ApiError(400, "invalid_note", "'note' must be a string.")
    try:
        updated = await request.app[HANDOFF].repo.set_lead_state(
            found.id, str(state), user_id=user.id, username=user.username, note=note
        )
    except InvalidTransition as exc:
        raise ApiError(409, "invalid_transition", str(exc)) from exc
    await audit_request(
        request,
        user,
        "lead.update",
        conversation_id=found.conversation_id,
        detail={"from": found.state, "to": updated.state},
    )
    return web.json_response({"lead": _lead_json(updated)})


@require("supervisor", "admin")
async def hit_report(request: web.Request) -> web.Response:
    """GET /api/console/reports/hits: per detector rule, how often volunteers confirmed it."""
    return web.json_response({"rules": await request.app[HANDOFF].repo.hit_precision()})


async def console_ws(request: web.Request) -> web.StreamResponse:
    """GET /api/console/ws: live offers, queue changes and messages; connecting means online."""
    check_ws_origin(request)
    user = await current_user(request)
    if user.role not in HELPERS:
        await deny(request, user, "console.denied")
    handoff = request.app[HANDOFF]
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    topics = [CONSOLE_TOPIC, volunteer_topic(user.id)]
    if user.role in OVERSEERS:
        topics.append(SUPERVISORS_TOPIC)
    open_consoles = request.app[OPEN_CONSOLES]
    async with request.app[HANDOFF].bus.subscribe(*topics) as sub:

        async def forward() -> None:
            async for event in sub:
                await ws.send_json({"topic": event.topic, "type": event.topic, **event.data})

        token = request.cookies.get(COOKIE, "")

        async def beat() -> None:
            # The socket lives only as long as the login: after a logout elsewhere, expiry or
            # a disabled account it ends, so nobody keeps reading and nobody is counted as
            # available who cannot take a chat.
            while True:
                await asyncio.sleep(BEAT_SECONDS)
                if await request.app[ACCOUNTS].session_user(token) is None:
                    return
                await handoff.heartbeat(user.id)

        async def read() -> None:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await handoff.heartbeat(user.id)
                elif msg.type == WSMsgType.ERROR:
                    break

        open_consoles[user.id] = open_consoles.get(user.id, 0) + 1
        tasks: list[asyncio.Task[None]] = []
        try:
            await handoff.connect(user.id)  # online, and offered whatever is waiting
            await ws.send_json({"type": "hello", "user": user_json(user)})
            pump, beating, reading = (asyncio.create_task(f()) for f in (forward, beat, read))
            tasks = [pump, beating, reading]
            await asyncio.wait({beating, reading}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            open_consoles[user.id] -= 1
            if open_consoles[user.id] <= 0:  # another tab of the same volunteer keeps them online
                del open_consoles[user.id]
                with contextlib.suppress(Exception):
                    await handoff.disconnect(user.id)
            for t in tasks:
                t.cancel()
            if tasks:
                await asyncio.wait(tasks)
        if not ws.closed:  # the login ended under an open socket
            await ws.close(code=4401, message=b"session ended")
    return ws
