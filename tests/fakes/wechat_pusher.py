"""Plays WeChat pushing customer-service messages to our callback (CHANNELS.md 1.1 / 1.3).

Signs with sha1 as the docs say, encrypts with wechatpy's PrpCrypto (the AES scheme of
WeChatCrypto) in safe and compatible mode, in JSON or XML, and retries like WeChat.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
from wechatpy.crypto import PrpCrypto, WeChatCrypto

if TYPE_CHECKING:
    from tests.fakes.wechat_api import FakeWeChatAPI

Mode = Literal["plain", "compatible", "safe"]
Fmt = Literal["json", "xml"]

# ---------------------------------------------------------------- official vectors (MP docs,
# framework/server-ability/message-push.html), reproduced by test_wechat_fakes.py.
VECTOR_TOKEN = "AAAAA"
VECTOR_AES_KEY = "A" * 43
VECTOR_APPID = "wxba5fad812f8e6fb9"
# URL check
VECTOR_URL_TIMESTAMP = "1714036504"
VECTOR_URL_NONCE = "1514711492"
VECTOR_URL_ECHOSTR = "4375120948345356249"
VECTOR_URL_SIGNATURE = "f464b24fc39322e44b38aa78f5edd27bd1441696"
# plain-mode push of the debug_demo event
VECTOR_PLAIN_TIMESTAMP = "1714037059"
VECTOR_PLAIN_NONCE = "486452656"
VECTOR_PLAIN_SIGNATURE = "899cf89e464efb63f54ddac96b0a0a235f53aa78"
VECTOR_PLAIN_BODY = {
    "ToUserName": "gh_97417a04a28d",
    "FromUserName": "o9AgO5Kd5ggOC-bXrbNODIiE3bGY",
    "CreateTime": 1714037059,
    "MsgType": "event",
    "Event": "debug_demo",
    "debug_str": "hello world",
}
# safe-mode push of the debug_demo event
VECTOR_SAFE_TIMESTAMP = "1714112445"
VECTOR_SAFE_NONCE = "415670741"
VECTOR_SAFE_OPENID = "o9AgO5Kd5ggOC-bXrbNODIiE3bGY"
VECTOR_SAFE_SIGNATURE = "6c5c811b55cc85e0e1b54100749188c20beb3f5d"
VECTOR_SAFE_MSG_SIGNATURE = "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"
VECTOR_SAFE_RANDOM = "a8eedb185eb2fecf"
VECTOR_SAFE_ENCRYPT = (
    "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcv"
    "ZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3F"
    "n2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSe"
    "OBrebufAlr7F9mFUPAJGj04="
)
VECTOR_SAFE_BODY = {"ToUserName": "gh_97417a04a28d", "Encrypt": VECTOR_SAFE_ENCRYPT}
VECTOR_SAFE_PLAINTEXT = (
    '{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY",'
    '"CreateTime":1714112445,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}'
)
# encrypted reply (what a passive reply would be; we never send one, but the AES must match)
VECTOR_REPLY_PLAINTEXT = '{"demo_resp":"good luck"}'
VECTOR_REPLY_RANDOM = "707722b803182950"
VECTOR_REPLY_TIMESTAMP = "1713424427"
VECTOR_REPLY_NONCE = "415670741"
VECTOR_REPLY_ENCRYPT = (
    "ELGduP2YcVatjqIS+eZbp80MNLoAUWvzzyJxgGzxZO/5sAvd070Bs6qrLARC9nVHm48Y4hyRbtzve1L32tmxSQ=="
)
VECTOR_REPLY_MSG_SIGNATURE = "1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1"

ACK_BODIES = ("success", "")  # the only answers WeChat counts as acknowledged


def sign(*parts: str) -> str:
    """WeChat's signature: sha1 over the lexicographically sorted parts, concatenated."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def encrypt_payload(aes_key: str, appid: str, plaintext: str, random16: str | None = None) -> str:
    """AES-256-CBC as WeChat does (rand16 + len + msg + appid, PKCS#7/32), base64 text."""
    crypto = WeChatCrypto("unused", aes_key, appid)  # validates the 43-char key
    prp = PrpCrypto(crypto.key)
    if random16 is not None:
        prp.get_random_string = lambda: random16  # type: ignore[method-assign]
    return prp.encrypt(plaintext, appid).decode("ascii")


def to_xml(payload: dict[str, Any]) -> str:
    """Render a push payload as WeChat's XML: numbers bare, strings in CDATA."""
    parts = ["<xml>"]
    for key, value in payload.items():
        if isinstance(value, bool) or not isinstance(value, int):
            # "]]>" cannot live inside one CDATA section; split it like any XML writer must.
            text = str(value).replace("]]>", "]]]]><![CDATA[>")
            parts.append(f"<{key}><![CDATA[{text}]]></{key}>")
        else:
            parts.append(f"<{key}>{value}</{key}>")
    parts.append("</xml>")
    return "".join(parts)


@dataclass
class Delivery:
    """One HTTP attempt of a push and what our callback answered."""

    attempt: int  # 0 for the first delivery, 1..3 for retries
    method: str
    params: dict[str, str]
    body: str | None  # what our callback answered; None when no answer came
    request_body: str
    status: int | None  # None when no answer came (timeout or connection error)
    elapsed: float
    error: str | None = None

    @property
    def acknowledged(self) -> bool:
        """WeChat counts only HTTP 200 with `success` or an empty body."""
        return self.status == 200 and self.body is not None and self.body.strip() in ACK_BODIES


@dataclass
class PushResult:
    """A message WeChat pushed, with every delivery attempt it made."""

    payload: dict[str, Any]
    msg_id: int | None
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        """Whether some attempt was acknowledged (WeChat then stops retrying)."""
        return any(d.acknowledged for d in self.deliveries)

    @property
    def last(self) -> Delivery:
        """The final attempt."""
        return self.deliveries[-1]


class WeChatPusher:
    """Pushes messages to our WeChat callback over HTTP, the way WeChat's servers do."""

    def __init__(
        self,
        callback_url: str,
        token: str,
        aes_key: str,
        appid: str,
        api: FakeWeChatAPI | None = None,
        *,
        to_user: str = "gh_fake00000000",
        timeout: float = 5.0,
        retries: int = 3,
    ) -> None:
        self.callback_url = callback_url
        self.token = token
        self.aes_key = aes_key
        self.appid = appid
        self.api = api
        self.to_user = to_user
        self.timeout = timeout  # WeChat waits 5 s for an answer
        self.retries = retries  # then resends ("总共重试三次")
        self.deliveries: list[Delivery] = []
        self.results: list[PushResult] = []
        WeChatCrypto(token, aes_key, appid)  # fail early on a malformed EncodingAESKey
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> WeChatPusher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            # trust_env=False: never route 127.0.0.1 through an HTTP(S)_PROXY.
            self._session = aiohttp.ClientSession(trust_env=False)
        return self._session

    def _clock(self) -> float:
        # CreateTime is WeChat's time: follow the fake API's clock so that events pushed
        # after api.advance() get distinct CreateTimes (events deduplicate on it).
        # The query timestamp stays wall time: our callback can only compare it to its own.
        return self.api.now() if self.api is not None else time.time()

    # ---------------------------------------------------------------- signing helpers
    @staticmethod
    def fresh_timestamp_nonce() -> tuple[str, str]:
        """A current timestamp and a random numeric nonce, as WeChat sends them."""
        return str(int(time.time())), str(random.randint(10**8, 2**31 - 1))

    def signed_params(
        self,
        *,
        timestamp: str | None = None,
        nonce: str | None = None,
        encrypt: str | None = None,
        openid: str | None = None,
    ) -> dict[str, str]:
        """Query parameters of a push; with encrypt, the safe-mode ones (msg_signature)."""
        ts, nc = self.fresh_timestamp_nonce()
        ts, nc = timestamp or ts, nonce or nc
        params = {"signature": sign(self.token, ts, nc), "timestamp": ts, "nonce": nc}
        if encrypt is not None:
            if openid is not None:
                params["openid"] = openid
            params["encrypt_type"] = "aes"
            params["msg_signature"] = sign(self.token, ts, nc, encrypt)
        return params

    # ---------------------------------------------------------------- pushes
    async def verify_url(self, echostr: str | None = None) -> Delivery:
        """The URL check: GET with signature/timestamp/nonce/echostr; we must echo echostr."""
        params = self.signed_params()
        params["echostr"] = echostr or str(random.randint(10**18, 2**63 - 1))
        return await self._deliver("GET", params, "", {}, attempt=0)

    async def push_text(
        self,
        openid: str,
        text: str,
        mode: Mode = "plain",
        fmt: Fmt = "json",
        msg_id: int | None = None,
        create_time: int | None = None,
    ) -> PushResult:
        """A user typed text in the CS session."""
        return await self._push(
            openid, {"MsgType": "text", "Content": text}, mode, fmt, msg_id, create_time
        )

    async def push_image(
        self,
        openid: str,
        pic_url: str = "http://mmbiz.qpic.cn/fake/0",
        media_id: str = "fake_media_id",
        mode: Mode = "plain",
        fmt: Fmt = "json",
        msg_id: int | None = None,
        create_time: int | None = None,
    ) -> PushResult:
        """A user sent an image."""
        fields = {"MsgType": "image", "PicUrl": pic_url, "MediaId": media_id}
        return await self._push(openid, fields, mode, fmt, msg_id, create_time)

    async def push_card(
        self,
        openid: str,
        title: str = "card",
        page_path: str = "pages/index/index",
        app_id: str | None = None,
        thumb_url: str = "",
        thumb_media_id: str = "",
        mode: Mode = "plain",
        fmt: Fmt = "json",
        msg_id: int | None = None,
        create_time: int | None = None,
    ) -> PushResult:
        """A user sent a mini-program card (miniprogrampage)."""
        fields = {
            "MsgType": "miniprogrampage",
            "Title": title,
            "AppId": app_id or self.appid,
            "PagePath": page_path,
            "ThumbUrl": thumb_url,
            "ThumbMediaId": thumb_media_id,
        }
        return await self._push(openid, fields, mode, fmt, msg_id, create_time)

    async def push_enter_session(
        self,
        openid: str,
        session_from: str = "",
        mode: Mode = "plain",
        fmt: Fmt = "json",
        create_time: int | None = None,
    ) -> PushResult:
        """The user_enter_tempsession event (tapped the contact button); events have no MsgId."""
        fields = {
            "MsgType": "event",
            "Event": "user_enter_tempsession",
            "SessionFrom": session_from,
        }
        return await self._push(openid, fields, mode, fmt, None, create_time)

    async def push_raw(
        self,
        body: str | bytes,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        method: str = "POST",
    ) -> Delivery:
        """One unretried delivery of an arbitrary body (forged, malformed, hostile).

        Without params the query carries a valid plain-mode signature, so the body is what
        the callback has to judge.
        """
        text = body.decode("utf-8", "surrogateescape") if isinstance(body, bytes) else body
        return await self._deliver(
            method,
            params if params is not None else self.signed_params(),
            text,
            headers or {},
            0,
            raw=body,
        )

    # ---------------------------------------------------------------- internals
    def build_payload(
        self, openid: str, fields: dict[str, Any], msg_id: int | None, create_time: int | None
    ) -> dict[str, Any]:
        """The plaintext push payload in WeChat's field order."""
        payload: dict[str, Any] = {
            "ToUserName": self.to_user,
            "FromUserName": openid,
            "CreateTime": create_time if create_time is not None else int(self._clock()),
            "MsgType": fields["MsgType"],
        }
        rest = {k: v for k, v in fields.items() if k != "MsgType"}
        if fields["MsgType"] == "event":
            payload.update(rest)
        elif fields["MsgType"] == "miniprogrampage":
            payload.update({"MsgId": msg_id, **rest})  # the doc's order: MsgId before the card
        else:
            payload.update({**rest, "MsgId": msg_id})
        return payload

    def encode(
        self, payload: dict[str, Any], mode: Mode, fmt: Fmt, openid: str
    ) -> tuple[dict[str, str], str]:
        """Query params and body for one delivery (fresh timestamp and nonce every call)."""
        plaintext = (
            json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
            if fmt == "json"
            else to_xml(payload)
        )
        if mode == "plain":
            return self.signed_params(), plaintext
        encrypt = encrypt_payload(self.aes_key, self.appid, plaintext)
        params = self.signed_params(encrypt=encrypt, openid=openid)
        outer: dict[str, Any] = (
            {"ToUserName": self.to_user, "Encrypt": encrypt}
            if mode == "safe"
            else {**payload, "Encrypt": encrypt}  # compatible: plaintext and ciphertext together
        )
        body = (
            json.dumps(outer, ensure_ascii=False, separators=(",", ":"))
            if fmt == "json"
            else to_xml(outer)
        )
        return params, body

    async def _push(
        self,
        openid: str,
        fields: dict[str, Any],
        mode: Mode,
        fmt: Fmt,
        msg_id: int | None,
        create_time: int | None,
    ) -> PushResult:
        if fields["MsgType"] != "event" and msg_id is None:
            msg_id = secrets.randbelow(2**62) + 2**52  # an int64 like the real ones
        payload = self.build_payload(openid, fields, msg_id, create_time)
        # The user acted in WeChat whatever our callback does: the reply window opens now.
        if self.api is not None:
            if fields["MsgType"] == "event":
                if fields.get("Event") == "user_enter_tempsession":
                    self.api.user_enter_session(openid)
            else:
                self.api.user_message(openid)
        result = PushResult(payload, msg_id)
        self.results.append(result)
        headers = {"Content-Type": "application/json" if fmt == "json" else "text/xml"}
        for attempt in range(self.retries + 1):
            params, body = self.encode(payload, mode, fmt, openid)  # same MsgId, fresh ts/nonce
            delivery = await self._deliver("POST", params, body, headers, attempt)
            result.deliveries.append(delivery)
            # Assumption (CHANNELS 1.3): another 200 body is a failure WeChat does not retry.
            if delivery.status is not None and delivery.status < 500:
                break
        return result

    async def _deliver(
        self,
        method: str,
        params: dict[str, str],
        body: str,
        headers: dict[str, str],
        attempt: int,
        raw: str | bytes | None = None,
    ) -> Delivery:
        started = time.monotonic()
        status: int | None = None
        answer: str | None = None
        error: str | None = None
        data = raw if raw is not None else (body.encode("utf-8") if body else None)
        try:
            async with self._http().request(
                method,
                self.callback_url,
                params=params,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                status = resp.status
                answer = (await resp.read()).decode("utf-8", "replace")
        except TimeoutError:
            error = "timeout"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        delivery = Delivery(
            attempt=attempt,
            method=method,
            params=params,
            body=answer,
            request_body=body,
            status=status,
            elapsed=time.monotonic() - started,
            error=error,
        )
        self.deliveries.append(delivery)
        return delivery
