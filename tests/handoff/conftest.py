"""Fixtures for the handoff tests: the Redis URL (or a skip) and a per-test channel prefix."""

from __future__ import annotations

import os
import uuid

import pytest


@pytest.fixture
def redis_url() -> str:
    """The Redis used by tests, from QINGTING_TEST_REDIS_URL; skip the test when unset."""
    url = os.environ.get("QINGTING_TEST_REDIS_URL")
    if not url:
        pytest.skip(
            "QINGTING_TEST_REDIS_URL is not set; set it (e.g. redis://127.0.0.1:6379/0) "
            "to run the Redis event bus tests"
        )
    return url


@pytest.fixture
def bus_prefix() -> str:
    """A random channel prefix so parallel test runs on one Redis never see each other."""
    return f"qt-test-{uuid.uuid4().hex}:"
