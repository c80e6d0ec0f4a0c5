"""Fixtures for the handoff tests: the Redis URL (or a skip) and a per-test channel prefix."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.conftest import need


@pytest.fixture
def redis_url() -> str:
    """The Redis used by tests, from QINGTING_TEST_REDIS_URL; skip the test when unset."""
    return need(os.environ.get("QINGTING_TEST_REDIS_URL"), "QINGTING_TEST_REDIS_URL")


@pytest.fixture
def bus_prefix() -> str:
    """A random channel prefix so parallel test runs on one Redis never see each other."""
    return f"qt-test-{uuid.uuid4().hex}:"
