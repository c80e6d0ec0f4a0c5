"""`qingting user add`: password from stdin or generated once, and clear refusals."""

from __future__ import annotations

import asyncio
import io
import re

import pytest

from bot.config import Settings
from bot.console.users_cli import user_add_main
from storage.accounts import Accounts, LoginFailed, UserView
from storage.crypto import Vault, load_or_create_secret
from storage.store import Store


class Terminal(io.StringIO):
    """stdin as when a person runs the command in a terminal (nothing piped)."""

    def isatty(self) -> bool:
        return True


def log_in(settings: Settings, username: str, password: str) -> UserView:
    """Authenticate against the database the CLI wrote."""

    async def run() -> UserView:
        vault = Vault(load_or_create_secret(settings.var_dir, settings.secret_key))
        store = Store.open(settings.database_url, vault)
        try:
            return await Accounts(store).authenticate(username, password)
        finally:
            await store.close()

    return asyncio.run(run())


def add(settings: Settings, name: str, role: str, stdin: io.StringIO) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = user_add_main(name, role, stdin, out, settings, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_password_from_piped_stdin(settings: Settings) -> None:
    code, out, _ = add(settings, "lin", "volunteer", io.StringIO("piped secret pw\nignored\n"))
    assert code == 0
    assert "lin" in out and "piped secret pw" not in out
    assert log_in(settings, "lin", "piped secret pw").role == "volunteer"
    with pytest.raises(LoginFailed):
        log_in(settings, "lin", "ignored")


def test_generated_password_is_printed_once_and_works(settings: Settings) -> None:
    code, out, _ = add(settings, "zhou", "supervisor", Terminal())
    assert code == 0
    found = re.findall(r"password \(shown once, not stored\): (\S+)", out)
    assert len(found) == 1 and len(found[0]) >= 16
    assert log_in(settings, "zhou", found[0]).role == "supervisor"

    code, out2, _ = add(settings, "wang", "admin", Terminal())
    assert re.findall(r"not stored\): (\S+)", out2) != found  # a fresh one each time


def test_existing_user_is_refused_and_keeps_its_password(settings: Settings) -> None:
    assert add(settings, "lin", "volunteer", io.StringIO("first password\n"))[0] == 0
    code, out, err = add(settings, "lin", "admin", io.StringIO("second password\n"))
    assert code == 1 and "already exists" in err and out == ""
    assert log_in(settings, "lin", "first password").role == "volunteer"


@pytest.mark.parametrize(
    ("name", "role", "stdin", "message"),
    [
        ("lin", "root", "a good password\n", "role must be one of"),
        ("lin", "volunteer", "\n", "no password"),
        ("lin", "volunteer", "short\n", "at least 8"),
        ("lin li", "volunteer", "a good password\n", "username"),
    ],
)
def test_bad_input_is_explained(
    settings: Settings, name: str, role: str, stdin: str, message: str
) -> None:
    code, out, err = add(settings, name, role, io.StringIO(stdin))
    assert code == 2 and message in err and out == ""
