"""Settings from the environment (QINGTING_*), validated once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage.store import Store


class ConfigError(ValueError):
    """A setting is missing or malformed."""


@dataclass(frozen=True)
class WeChatSettings:
    """WeChat mini-program customer-service channel; on only when all four secrets are set."""

    appid: str = ""
    secret: str = ""
    token: str = ""
    aes_key: str = ""
    api_base: str = "https://api.weixin.qq.com/"
    # The message-push mode set in WeChat's console. In safe and compatible mode every push
    # carries Encrypt and a msg_signature over it; a plaintext push is then refused, because
    # the plain signature covers only token, timestamp and nonce, never the body.
    mode: str = "plain"

    @property
    def encrypted_only(self) -> bool:
        """True when a push without an encrypted body must be refused."""
        return self.mode in ("safe", "compatible")

    @property
    def enabled(self) -> bool:
        """True when the channel can run (the AES key is needed only in safe mode)."""
        return bool(self.appid and self.secret and self.token)


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment."""

    host: str = "127.0.0.1"
    port: int = 8080
    var_dir: Path = Path("var")
    database_url: str = ""
    redis_url: str | None = None
    secret_key: str | None = None
    default_lang: str = "zh-CN"
    scripts_dir: Path | None = None
    max_text_chars: int = 2000
    sla_urgent_seconds: float = 60.0
    sla_imminent_seconds: float = 30.0
    reassure_seconds: float = 90.0
    volunteer_capacity: int = 3
    recover_unanswered: bool = True
    # Days a closed conversation (all its leads closed) keeps what the child wrote; 0: forever.
    retention_days: float = 180.0
    wechat: WeChatSettings = field(default_factory=WeChatSettings)

    def __post_init__(self) -> None:
        if not self.database_url:
            db = (self.var_dir / "qingting.db").resolve()
            object.__setattr__(self, "database_url", f"sqlite+aiosqlite:///{db}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from QINGTING_* variables, then explicit overrides (CLI flags)."""
        e = os.environ if env is None else env

        def num(name: str, default: float) -> float:
            raw = e.get(name)
            if raw is None or raw == "":
                return default
            try:
                return float(raw)
            except ValueError as exc:
                raise ConfigError(f"{name} must be a number, got {raw!r}") from exc

        wechat = WeChatSettings(
            appid=e.get("QINGTING_WECHAT_APPID", ""),
            secret=e.get("QINGTING_WECHAT_SECRET", ""),
            token=e.get("QINGTING_WECHAT_TOKEN", ""),
            aes_key=e.get("QINGTING_WECHAT_AES_KEY", ""),
            api_base=e.get("QINGTING_WECHAT_API_BASE", "") or "https://api.weixin.qq.com/",
            # An AES key means the console is in safe (or compatible) mode unless told otherwise.
            mode=e.get("QINGTING_WECHAT_MODE", "")
            or ("safe" if e.get("QINGTING_WECHAT_AES_KEY") else "plain"),
        )
        if wechat.aes_key and len(wechat.aes_key) != 43:
            raise ConfigError("QINGTING_WECHAT_AES_KEY must be the 43-character EncodingAESKey")
        if wechat.mode not in ("plain", "compatible", "safe"):
            raise ConfigError("QINGTING_WECHAT_MODE must be plain, compatible or safe")
        if wechat.encrypted_only and not wechat.aes_key:
            raise ConfigError(f"QINGTING_WECHAT_MODE={wechat.mode} needs QINGTING_WECHAT_AES_KEY")
        scripts = e.get("QINGTING_SCRIPTS_DIR")
        s = cls(
            host=e.get("QINGTING_HOST", "127.0.0.1"),
            port=int(num("QINGTING_PORT", 8080)),
            var_dir=Path(e.get("QINGTING_VAR_DIR", "var")),
            database_url=e.get("QINGTING_DATABASE_URL", ""),
            redis_url=e.get("QINGTING_REDIS_URL") or None,
            secret_key=e.get("QINGTING_SECRET_KEY") or None,
            default_lang=e.get("QINGTING_DEFAULT_LANG", "zh-CN"),
            scripts_dir=Path(scripts) if scripts else None,
            sla_urgent_seconds=num("QINGTING_SLA_URGENT_SECONDS", 60.0),
            sla_imminent_seconds=num("QINGTING_SLA_IMMINENT_SECONDS", 30.0),
            reassure_seconds=num("QINGTING_REASSURE_SECONDS", 90.0),
            volunteer_capacity=int(num("QINGTING_VOLUNTEER_CAPACITY", 3)),
            retention_days=num("QINGTING_RETENTION_DAYS", 180.0),
            wechat=wechat,
        )
        return replace(s, **{k: v for k, v in overrides.items() if v is not None})


def open_store(settings: Settings) -> Store:
    """The store of these settings: their database, with the secret key (generated into var/ on
    first use) that encrypts what children write."""
    from storage.crypto import Vault, load_or_create_secret
    from storage.store import Store

    vault = Vault(load_or_create_secret(settings.var_dir, settings.secret_key))
    return Store.open(settings.database_url, vault)
