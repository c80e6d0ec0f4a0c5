"""The repository on every backend: encryption at rest, idempotency, turns, kv, leads."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text

from storage.crypto import DecryptionError, Vault
from storage.store import ConversationNotFound, Store

SECRET = "storage-test-secret-0123456789"


@pytest.fixture
async def store(database_url: str):
    s = Store.open(database_url, Vault(SECRET))
    yield s
    await s.close()


async def new_conv(store: Store, address: str = "openid-123", **kw):
    return await store.create_conversation(
        channel=kw.pop("channel", "wechat"),
        address=address,
        script_id="intake",
        script_lang="zh-CN",
        script_version="v1",
        state="greet",
        slots=kw.pop("slots", {"what": "他打我"}),
        **kw,
    )


async def test_what_a_child_wrote_is_never_stored_in_plain(store: Store) -> None:
    conv = await new_conv(store, slots={"story": "爸爸喝醉了打我"})
    await store.store_inbound(conv.id, channel="wechat", message_id="m1", text="我躲在厕所里")
    async with store.turn(conv.id) as turn:
        await turn.add_outbound("我听到了", [{"label": "好", "value": "ok"}])
    async with store.engine.connect() as c:
        rows = []
        for table in ("conversations", "messages", "events", "leads", "kv"):
            rows += [repr(tuple(r)) for r in (await c.execute(text(f"SELECT * FROM {table}")))]
    dump = "\n".join(rows)
    for secret in ("openid-123", "我躲在厕所里", "爸爸喝醉了打我", "我听到了"):
        assert secret not in dump
        assert secret.encode() not in dump.encode()
    # ...and yet everything reads back decrypted.
    again = await store.get_conversation(conv.id)
    assert again is not None
    assert again.address == "openid-123"
    assert again.slots == {"story": "爸爸喝醉了打我"}
    assert [m.text for m in await store.transcript(conv.id)] == ["我躲在厕所里", "我听到了"]


async def test_reporter_id_is_a_stable_pseudonym_per_channel(store: Store) -> None:
    a = await new_conv(store, "same-user")
    async with store.turn(a.id) as turn:  # one open conversation per child: the next is later
        await turn.update(mode="closed")
    b = await new_conv(store, "same-user")
    c = await new_conv(store, "same-user", channel="web")
    assert a.reporter_id == b.reporter_id
    assert a.reporter_id != c.reporter_id
    assert "same-user" not in a.reporter_id


async def test_a_platform_retry_stores_one_message(store: Store) -> None:
    conv = await new_conv(store)
    first, new1 = await store.store_inbound(conv.id, channel="wechat", message_id="42", text="hi")
    second, new2 = await store.store_inbound(conv.id, channel="wechat", message_id="42", text="hi")
    assert (new1, new2) == (True, False)
    assert first.id == second.id
    assert len(await store.transcript(conv.id)) == 1


async def test_concurrent_duplicates_store_one_message(store: Store) -> None:
    conv = await new_conv(store)
    results = await asyncio.gather(
        *[
            store.store_inbound(conv.id, channel="wechat", message_id="dup", text="x")
            for _ in range(8)
        ]
    )
    assert sum(1 for _, new in results if new) == 1
    assert len({m.id for m, _ in results}) == 1


async def test_turns_of_one_conversation_never_interleave(store: Store) -> None:
    conv = await new_conv(store, slots={"n": 0})
    inside = 0
    overlap = False

    async def bump() -> None:
        nonlocal inside, overlap
        async with store.turn(conv.id) as turn:
            inside += 1
            overlap = overlap or inside > 1
            n = turn.conversation.slots["n"]
            await asyncio.sleep(0.01)
            await turn.update(slots={"n": n + 1})
            inside -= 1

    await asyncio.gather(*[bump() for _ in range(10)])
    assert not overlap
    final = await store.get_conversation(conv.id)
    assert final is not None and final.slots["n"] == 10


async def test_a_failed_turn_changes_nothing(store: Store) -> None:
    conv = await new_conv(store)
    with pytest.raises(RuntimeError):
        async with store.turn(conv.id) as turn:
            await turn.update(state="elsewhere", mode="waiting")
            await turn.add_outbound("never sent")
            raise RuntimeError("boom")
    after = await store.get_conversation(conv.id)
    assert after is not None and (after.state, after.mode) == ("greet", "bot")
    assert await store.transcript(conv.id) == []


async def test_turn_on_unknown_conversation(store: Store) -> None:
    with pytest.raises(ConversationNotFound):
        async with store.turn("nope"):
            pass


async def test_unprocessed_messages_are_found_for_recovery(store: Store) -> None:
    conv = await new_conv(store)
    m1, _ = await store.store_inbound(conv.id, channel="wechat", message_id="a", text="one")
    m2, _ = await store.store_inbound(conv.id, channel="wechat", message_id="b", text="two")
    async with store.turn(conv.id) as turn:
        await turn.mark_processed(m1.id)
    assert [m.id for m in await store.unprocessed_inbound()] == [m2.id]


async def test_history_is_the_childs_earlier_messages(store: Store) -> None:
    conv = await new_conv(store)
    ids = []
    for i, t in enumerate(["他又喝醉了", "我躲在厕所", "好怕"]):
        m, _ = await store.store_inbound(conv.id, channel="wechat", message_id=str(i), text=t)
        ids.append(m.id)
    async with store.turn(conv.id) as turn:
        await turn.add_outbound("bot text")
        assert await turn.history(before_id=ids[2]) == ["他又喝醉了", "我躲在厕所"]


async def test_queue_position_ranks_risk_then_waiting_time(store: Store) -> None:
    convs = [await new_conv(store, f"u{i}") for i in range(3)]
    for conv, level in zip(convs, (2, 3, 2), strict=True):
        async with store.turn(conv.id) as turn:
            await turn.update(mode="waiting", risk_level=level, waiting_since=_now())
        await asyncio.sleep(0.01)
    positions = []
    for conv in convs:
        async with store.turn(conv.id) as turn:
            positions.append(await turn.waiting_ahead() + 1)
    assert positions == [2, 1, 3]


async def test_compare_and_set_lets_exactly_one_win(store: Store) -> None:
    conv = await new_conv(store)
    async with store.turn(conv.id) as turn:
        await turn.update(mode="waiting")
    wins = await asyncio.gather(
        *[
            store.update_conversation_if(
                conv.id, {"mode": "waiting"}, mode="human", assigned_to=uid
            )
            for uid in range(1, 6)
        ]
    )
    assert sum(wins) == 1
    after = await store.get_conversation(conv.id)
    assert after is not None and after.mode == "human"
    assert after.assigned_to == wins.index(True) + 1


async def test_kv_add_is_set_if_absent_with_expiry(store: Store) -> None:
    assert await store.kv_add("k", "1", timedelta(minutes=10))
    assert not await store.kv_add("k", "2", timedelta(minutes=10))
    assert await store.kv_get("k") == "1"
    assert await store.kv_add("short", "1", timedelta(seconds=-1))  # already expired
    assert await store.kv_get("short") is None
    assert await store.kv_add("short", "2", timedelta(minutes=1))
    await store.kv_set("k", "3", None)
    assert await store.kv_get("k") == "3"


async def test_leads_are_found_by_code_and_keep_the_highest_level(store: Store) -> None:
    conv = await new_conv(store)
    async with store.turn(conv.id) as turn:
        await turn.upsert_lead("QT-ABC234", risk_level=2, summary="被同学欺负", district="浦东")
    async with store.turn(conv.id) as turn:
        await turn.upsert_lead("QT-ABC234", risk_level=1, category="civil")
    lead = await store.lead_by_code("qt-abc234 ")
    assert lead is not None
    assert (lead.risk_level, lead.summary, lead.district, lead.category) == (
        2,
        "被同学欺负",
        "浦东",
        "civil",
    )


async def test_a_wrong_key_cannot_read_the_data(database_url: str) -> None:
    good = Store.open(database_url, Vault(SECRET))
    conv = await new_conv(good)
    await good.close()
    bad = Store.open(database_url, Vault("another-secret-entirely-000"))
    try:
        with pytest.raises(DecryptionError):
            await bad.get_conversation(conv.id)
    finally:
        await bad.close()


def test_vault_rejects_a_short_secret() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        Vault("short")


def _now():
    from storage.models import utcnow

    return utcnow()


async def test_a_flag_set_while_a_turn_runs_is_not_overwritten_by_it(store: Store) -> None:
    import asyncio as aio

    conv = await new_conv(store)
    inside = aio.Event()
    release = aio.Event()

    async def turn() -> None:
        async with store.turn(conv.id) as t:
            inside.set()
            await release.wait()
            await t.update(flags={**t.conversation.flags, "greeted": True})

    running = aio.create_task(turn())
    await inside.wait()
    cas = aio.create_task(
        store.update_conversation_if(conv.id, {}, flags={"wechat_undelivered": [1]})
    )
    await aio.sleep(0.05)
    release.set()
    await running
    assert await cas
    after = await store.get_conversation(conv.id)
    assert after is not None and after.flags == {"wechat_undelivered": [1]}  # set after the turn


async def test_a_misspelt_column_fails_loudly(store: Store) -> None:
    conv = await new_conv(store)
    with pytest.raises(KeyError, match="waitng_since"):
        async with store.turn(conv.id) as turn:
            await turn.update(mode="waiting", waitng_since=None)
    after = await store.get_conversation(conv.id)
    assert after is not None and after.mode == "bot"  # nothing half-written


async def test_a_missing_table_is_not_mistaken_for_an_outage(tmp_path) -> None:
    from storage.store import StorageUnavailable

    store = Store.open(f"sqlite+aiosqlite:///{tmp_path}/empty.db", Vault(SECRET))  # unmigrated
    try:
        with pytest.raises(Exception) as caught:
            await store.get_conversation("x")
        assert not isinstance(caught.value, StorageUnavailable)  # not retried as an outage
        assert "no such table" in str(caught.value)
    finally:
        await store.close()
