"""wechatpy's WeChatClient pointed at another host (CHANNELS.md 1.2 LocalClient)."""

from __future__ import annotations

import time
from typing import Any

from wechatpy import WeChatClient
from wechatpy.client.api.base import BaseWeChatAPI

REAL_HOST = "https://api.weixin.qq.com/"


class LocalClient(WeChatClient):
    """WeChatClient whose every URL, the token fetch included, goes to API_BASE."""

    API_BASE = REAL_HOST
    USE_STABLE_TOKEN = False

    def fetch_access_token(self) -> dict[str, Any]:
        """Fetch a token from API_BASE (upstream hard-codes the real host)."""
        if self.USE_STABLE_TOKEN:
            return self._fetch_stable_token()
        return self._fetch_access_token(
            url=self.API_BASE + "cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )

    def _fetch_stable_token(self) -> dict[str, Any]:
        # wechatpy has no stable_token helper; store the result the way _fetch_access_token does.
        result = self.post(
            self.API_BASE + "cgi-bin/stable_token",
            params={"access_token": None},  # present key stops _request adding one; None is omitted
            data={
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self.secret,
                "force_refresh": False,
            },
        )
        expires_in = int(result.get("expires_in", 7200))
        self.session.set(self.access_token_key, result["access_token"], expires_in)
        self.expires_at = int(time.time()) + expires_in
        return result


def local_client(
    base_url: str,
    appid: str,
    secret: str,
    *,
    timeout: float = 5,
    stable_token: bool = False,
) -> LocalClient:
    """A blocking wechatpy client talking to base_url, auto_retry off (it recurses on 40001)."""
    base = base_url.rstrip("/") + "/"
    cls = type(
        "BoundLocalClient",
        (LocalClient,),
        {"API_BASE": base, "API_BASE_URL": base + "cgi-bin/", "USE_STABLE_TOKEN": stable_token},
    )
    client = cls(appid, secret, timeout=timeout, auto_retry=False)
    # Sub-APIs with their own base (wxa, card, cloud…) would otherwise still hit the real host.
    for api in vars(client).values():
        own = getattr(api, "API_BASE_URL", None) if isinstance(api, BaseWeChatAPI) else None
        if isinstance(own, str) and own.startswith(REAL_HOST):
            api.API_BASE_URL = base + own[len(REAL_HOST) :]
    return client
