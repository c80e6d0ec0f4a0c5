"""Retention purge: a long-closed conversation loses what the child wrote, nothing else does."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from storage.crypto import Vault
from storage.handoff_repo import LEAD_STATES, HandoffRepo
from storage.models import utcnow
from storage.retention import purge_closed
from storage.store import Store
from storage.views import ConversationView
from tests.conftest import new_conversation


async def _conversation(store: Store, address: str, *, closed_days_ago: float | None) -> str:
    conv = await new_conversation(
        store, address, state="what", slots={"district": "浦东"}, token=f"token-{address}"
    )
    await store.store_inbound(
        conv.id, channel="wechat", message_id=f"{address}-1", text="他又打我了"
    )
    await HandoffRepo(store).add_note(conv.id, 1, "孩子说父亲喝酒后打她")
    if closed_days_ago is not None:
        async with store.turn(conv.id) as turn:
            await turn.update(mode="closed", closed_at=utcnow() - timedelta(days=closed_days_ago))
    return conv.id


async def _view(store: Store, cid: str) -> ConversationView:
    conv = await store.get_conversation(cid)
    assert conv is not None
    return conv


async def test_purge_drops_childrens_words_only_from_long_closed_conversations(
    database_url: str,
) -> None:
    store = Store.open(database_url, Vault("retention-test-secret-0123456"))
    repo = HandoffRepo(store)
    try:
        old = await _conversation(store, "openid-old", closed_days_ago=200)
        recent = await _conversation(store, "openid-recent", closed_days_ago=10)
        still_open = await _conversation(store, "openid-open", closed_days_ago=None)

        assert await purge_closed(store, utcnow() - timedelta(days=180)) == 1

        gone = await _view(store, old)
        assert gone.address == "" and gone.slots == {}
        assert await store.transcript(old) == []
        assert await repo.notes(old) == []
        assert gone.mode == "closed" and gone.risk_level == 0  # the record stays, without words
        assert any(e["type"] == "conversation.purged" for e in await store.events(old))
        # the child's web page can still learn that the chat has ended
        assert (await store.conversation_for_token(old, "token-openid-old")).mode == "closed"
        for kept in (recent, still_open):
            view = await _view(store, kept)
            assert view.address.startswith("openid-") and view.slots == {"district": "浦东"}
            assert [m.text for m in await store.transcript(kept)] == ["他又打我了"]
            assert len(await repo.notes(kept)) == 1

        assert await purge_closed(store, utcnow() - timedelta(days=180)) == 0  # idempotent
    finally:
        await store.close()


async def test_a_case_still_being_worked_keeps_its_transcript(database_url: str) -> None:
    store = Store.open(database_url, Vault("retention-test-secret-0123456"))
    try:
        cid = await _conversation(store, "openid-lead", closed_days_ago=400)
        async with store.turn(cid) as turn:
            lead = await turn.upsert_lead("QT-TEST-1", risk_level=2, summary="父亲打人")
        assert await purge_closed(store, utcnow() - timedelta(days=180)) == 0
        assert len(await store.transcript(cid)) == 1

        await HandoffRepo(store).set_lead_state(  # walk the lead to its final state
            lead.id, LEAD_STATES[1], user_id=1, username="s", note=None
        )
        for state in LEAD_STATES[2:]:
            await HandoffRepo(store).set_lead_state(
                lead.id, state, user_id=1, username="s", note="已联系学校 孩子说父亲打她"
            )
        assert await purge_closed(store, utcnow() - timedelta(days=180)) == 1
        assert await store.transcript(cid) == []
        after = await HandoffRepo(store).get_lead(lead.id)
        assert after is not None and after.code == "QT-TEST-1" and after.summary is None
        history = await HandoffRepo(store).lead_history(lead.id)
        assert history and all(h["note"] is None for h in history)
    finally:
        await store.close()


async def test_two_processes_purging_at_once_purge_each_conversation_once(
    database_url: str,
) -> None:
    store = Store.open(database_url, Vault("retention-test-secret-0123456"))
    other = Store.open(database_url, Vault("retention-test-secret-0123456"))  # a second process
    try:
        ids = [await _conversation(store, f"openid-{i}", closed_days_ago=200) for i in range(3)]
        before = utcnow() - timedelta(days=180)
        a, b = await asyncio.gather(purge_closed(store, before), purge_closed(other, before))
        assert a + b == 3
        for cid in ids:
            kinds = [e["type"] for e in await store.events(cid)]
            assert kinds.count("conversation.purged") == 1
    finally:
        await other.close()
        await store.close()
