"""Hypothesis fuzzing of the WeChat callback: no body or query ever gets a 500."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import build_app
from bot.channels.wechat import CALLBACK, WeChatChannel
from bot.channels.wechat_parse import BadPush
from bot.config import Settings, WeChatSettings
from tests.channels.conftest import AES_KEY, TOKEN, wechat_settings
from tests.conftest import TEST_SECRET
from tests.fakes.wechat_api import FakeWeChatAPI
from tests.fakes.wechat_pusher import WeChatPusher, encrypt_payload, sign, to_xml

FIELDS = [
    "ToUserName",
    "FromUserName",
    "CreateTime",
    "MsgType",
    "Content",
    "MsgId",
    "Event",
    "Encrypt",
    "Title",
    "PagePath",
    "MediaId",
    "SessionFrom",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.sampled_from(
        [
            "text",
            "image",
            "event",
            "miniprogrampage",
            "user_enter_tempsession",
            "oKID",
            "",
            "0",
            "-1",
            "9" * 30,
        ]
    ),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
PAYLOADS = st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=8)
XML_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60
)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    """(how the query is signed, body): raw bytes, JSON, XML, or encrypted JSON/XML."""
    kind = draw(st.sampled_from(["bytes", "json", "xml", "xml_raw", "enc_json", "enc_xml"]))
    if kind == "bytes":
        return "plain", draw(st.binary(max_size=300))
    if kind == "xml_raw":
        inner = "".join(
            f"<{k}>{draw(XML_TEXT)}</{k}>"
            for k in draw(st.lists(st.sampled_from(FIELDS), max_size=6))
        )
        return "plain", f"<xml>{inner}</xml>".encode()
    payload = draw(PAYLOADS)
    if kind == "json":
        return "plain", json.dumps(payload).encode()
    if kind == "xml":
        return "plain", to_xml(
            {k: v if isinstance(v, int) else str(v) for k, v in payload.items()}
        ).encode()
    plaintext = (
        json.dumps(payload)
        if kind == "enc_json"
        else to_xml({k: str(v) for k, v in payload.items()})
    )
    return "aes", plaintext.encode()


class ServerThread:
    """The app and the fake WeChat API on 127.0.0.1, run by a loop in another thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.url = ""
        self.appid = ""
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self.api = FakeWeChatAPI()
        await self.api.start()
        self.appid = self.api.appid
        self.app = build_app(wechat_settings(self.settings, self.api))
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}{CALLBACK}"

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.api.close()

    def __enter__(self) -> ServerThread:
        self.thread.start()
        assert self.ready.wait(30), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """One server for the whole fuzz run (hypothesis calls the test many times)."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    base = Settings(
        var_dir=tmp / "var", database_url=f"sqlite+aiosqlite:///{tmp}/qt.db", secret_key=TEST_SECRET
    )
    with ServerThread(base) as s:
        yield s


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    """A requests session that never goes through a proxy."""
    with requests.Session() as s:
        s.trust_env = False
        yield s


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=bodies(),
    tamper=st.sampled_from(["none", "none", "none", "signature", "msg_signature", "drop", "junk"]),
    junk=st.dictionaries(
        st.sampled_from(
            [
                "signature",
                "timestamp",
                "nonce",
                "encrypt_type",
                "msg_signature",
                "openid",
                "echostr",
                "x",
            ]
        ),
        st.text(max_size=20),
        max_size=4,
    ),
    method=st.sampled_from(["POST", "POST", "POST", "GET"]),
)
def test_the_callback_never_answers_500(
    server: ServerThread,
    http: requests.Session,
    body: tuple[str, bytes],
    tamper: str,
    junk: dict[str, str],
    method: str,
) -> None:
    mode, raw = body
    pusher = WeChatPusher(server.url, TOKEN, AES_KEY, server.appid)
    if mode == "aes":
        encrypt = encrypt_payload(AES_KEY, server.appid, raw.decode())
        raw = json.dumps({"ToUserName": "gh", "Encrypt": encrypt}).encode()
        params = pusher.signed_params(encrypt=encrypt, openid="oKID")
    else:
        params = pusher.signed_params()
    if tamper == "signature":
        params["signature"] = sign("wrong", params["timestamp"], params["nonce"])
    elif tamper == "msg_signature":
        params["msg_signature"] = "0" * 40
        params["encrypt_type"] = "aes"
    elif tamper == "drop":
        params.pop("nonce")
    elif tamper == "junk":
        params.update(junk)
    resp = http.request(method, server.url, params=params, data=raw, timeout=10)
    assert resp.status_code in (200, 400, 403, 413), (resp.status_code, resp.text[:200])
    if resp.status_code == 200 and method == "POST":
        assert resp.text == "success"


# ====================================================================== the parser alone


def channel() -> WeChatChannel:
    """A channel that is never started: _decode needs only the settings."""
    return WeChatChannel(WeChatSettings(appid="wxapp", secret="s", token=TOKEN, aes_key=AES_KEY))


@settings(max_examples=500, deadline=None)
@given(raw=st.binary(max_size=400), aes=st.booleans(), text=st.text(max_size=200))
def test_the_parser_only_ever_returns_a_push_or_refuses(raw: bytes, aes: bool, text: str) -> None:
    ch = channel()
    for body in (raw, text.encode("utf-8", "surrogatepass")):
        q: dict[str, Any] = {"timestamp": "1", "nonce": "2"}
        if aes:
            q["encrypt_type"] = "aes"
            q["msg_signature"] = sign(TOKEN, "1", "2", text)
        try:
            ch._decode(body, q)
        except (BadPush, PermissionError):
            pass


@settings(max_examples=200, deadline=None)
@given(payload=PAYLOADS, fmt=st.sampled_from(["json", "xml"]))
def test_validly_encrypted_random_payloads_only_ever_parse_or_refuse(
    payload: dict[str, Any], fmt: str
) -> None:
    ch = channel()
    plaintext = (
        json.dumps(payload) if fmt == "json" else to_xml({k: str(v) for k, v in payload.items()})
    )
    encrypt = encrypt_payload(AES_KEY, "wxapp", plaintext)
    q = {
        "timestamp": "1",
        "nonce": "2",
        "encrypt_type": "aes",
        "msg_signature": sign(TOKEN, "1", "2", encrypt),
    }
    body = json.dumps({"Encrypt": encrypt}).encode()
    try:
        push = ch._decode(body, q)
    except BadPush:
        return
    assert push.openid and push.msg_type in ("text", "image", "miniprogrampage", "event", "other")
