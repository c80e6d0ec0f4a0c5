"""WeChat push parsing: signatures, DTD refusal, safe-mode decryption, XML/JSON to a Push."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import struct
from dataclasses import dataclass
from typing import Any, Literal
from xml.parsers.expat import ExpatError

import xmltodict
from wechatpy import parse_message
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.events import EVENT_TYPES
from wechatpy.exceptions import InvalidAppIdException
from wechatpy.messages import MESSAGE_TYPES, BaseMessage, UnknownMessage

Fmt = Literal["json", "xml"]

OPENID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
MAX_TEXT = 16_000  # WeChat caps a CS text far below this; anything longer is not WeChat

# Everything a hostile or broken body can raise while being decoded, decrypted or parsed.
PARSE_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    ExpatError,
    struct.error,
    InvalidAppIdException,
    RecursionError,
)


class BadPush(ValueError):
    """The push is malformed or hostile (answered 400)."""


def sign(*parts: str) -> str:
    """WeChat's signature: sha1 of the sorted parts concatenated."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def signature_ok(signature: str, token: str, *parts: str) -> bool:
    """Constant-time check of a signature over token and parts (timestamp, nonce[, Encrypt])."""
    expected = sign(token, *parts).encode("ascii")
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


def refuse_dtd(raw: bytes | str) -> None:
    """Raise BadPush for any DOCTYPE or ENTITY declaration, before a parser sees it."""
    data = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
    if DTD.search(data):
        raise BadPush("DTD or entity declaration refused")


def detect_format(text: str) -> Fmt:
    """JSON or XML by the first significant character (the format is a console setting)."""
    head = text.lstrip("\ufeff \t\r\n")[:1]
    if head == "{":
        return "json"
    if head == "<":
        return "xml"
    raise BadPush("body is neither JSON nor XML")


def load_envelope(raw: bytes) -> tuple[dict[str, Any], str, Fmt]:
    """The push body as (fields, text, format); raises BadPush."""
    refuse_dtd(raw)
    try:
        text = raw.decode("utf-8")
        fmt = detect_format(text)
        if fmt == "json":
            data = json.loads(text)
        else:
            data = xmltodict.parse(text, disable_entities=True)["xml"]
    except BadPush:
        raise
    except PARSE_ERRORS as exc:
        raise BadPush(f"unparseable body: {type(exc).__name__}") from exc
    if not isinstance(data, dict):
        raise BadPush("body is not an object")
    return data, text, fmt


def decrypt(envelope: dict[str, Any], aes_key: str, appid: str) -> str:
    """The plaintext of a safe/compatible-mode push (check msg_signature first)."""
    encrypt = envelope.get("Encrypt")
    if not isinstance(encrypt, str) or not encrypt:
        raise BadPush("no Encrypt field")
    try:
        key = WeChatCrypto("", aes_key, appid).key
        plaintext = PrpCrypto(key).decrypt(encrypt, appid)
    except PARSE_ERRORS as exc:
        raise BadPush(f"cannot decrypt: {type(exc).__name__}") from exc
    if not isinstance(plaintext, str):
        raise BadPush("decrypted payload is not text")
    refuse_dtd(plaintext)
    return plaintext


@dataclass(frozen=True, slots=True)
class Push:
    """One pushed message or event, normalised."""

    openid: str
    msg_type: str  # text | image | miniprogrampage | event | other
    msg_id: str  # MsgId as digits; "" for events
    create_time: int
    content: str = ""  # text content, or the card's title
    event: str = ""  # for events, lower-case (user_enter_tempsession, ...)
    page_path: str = ""
    media_id: str = ""

    @property
    def dedup_key(self) -> str:
        """A stable key of this push across WeChat's retries (never nonce or timestamp)."""
        if self.msg_id:
            return self.msg_id
        raw = f"{self.openid}|{self.create_time}|{self.event or self.msg_type}"
        return "evt:" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:40]


def json_message(d: dict[str, Any]) -> BaseMessage:
    """A JSON push as wechatpy's message classes (parse_message reads XML only)."""
    d = {k: str(v) if isinstance(v, int | float) else v for k, v in d.items()}
    msg_type = d["MsgType"]
    if not isinstance(msg_type, str):
        raise BadPush("MsgType is not a string")
    if msg_type.lower() == "event":
        event = d.get("Event", "")
        if not isinstance(event, str):
            raise BadPush("Event is not a string")
        return EVENT_TYPES.get(event.lower(), UnknownMessage)(d)
    return MESSAGE_TYPES.get(msg_type.lower(), UnknownMessage)(d)


def _str(value: Any, field: str, limit: int = MAX_TEXT) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadPush(f"{field} is not a string")
    if len(value) > limit:
        raise BadPush(f"{field} is too long")
    return value


def parse_push(plaintext: str, fmt: Fmt) -> Push:
    """The decrypted push as a Push; raises BadPush on anything malformed."""
    refuse_dtd(plaintext)
    try:
        if fmt == "json":
            data = json.loads(plaintext)
            if not isinstance(data, dict):
                raise BadPush("payload is not an object")
            msg = json_message(data)
        else:
            msg = parse_message(plaintext)
        if msg is None:
            raise BadPush("empty payload")
        return _to_push(msg)
    except BadPush:
        raise
    except PARSE_ERRORS as exc:
        raise BadPush(f"malformed payload: {type(exc).__name__}") from exc


def _to_push(msg: BaseMessage) -> Push:
    data: dict[str, Any] = msg._data
    openid = _str(data.get("FromUserName"), "FromUserName", 128)
    if not OPENID.match(openid):
        raise BadPush("FromUserName is not an openid")
    create_time = int(_str(data.get("CreateTime"), "CreateTime", 20) or "0")
    msg_type = _str(data.get("MsgType"), "MsgType", 64).lower()
    raw_id = _str(data.get("MsgId"), "MsgId", 40)
    if raw_id and not raw_id.isdigit():
        raise BadPush("MsgId is not a number")
    if msg_type == "event":
        event = _str(data.get("Event"), "Event", 64).lower()
        return Push(openid, "event", "", create_time, event=event)
    if not raw_id:
        raise BadPush("message without MsgId")
    if msg_type == "text":
        return Push(openid, "text", raw_id, create_time, content=_str(msg.content, "Content"))
    if msg_type == "image":
        media = _str(data.get("MediaId"), "MediaId", 512)
        return Push(openid, "image", raw_id, create_time, media_id=media)
    if msg_type == "miniprogrampage":
        title = _str(data.get("Title"), "Title", 1000)
        path = _str(data.get("PagePath"), "PagePath", 2000)
        return Push(openid, "miniprogrampage", raw_id, create_time, content=title, page_path=path)
    return Push(openid, "other", raw_id, create_time)
