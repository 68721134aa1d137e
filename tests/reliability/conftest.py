"""Shared fixtures for the reliability suite."""
from __future__ import annotations

import pytest

from bitstore.ground import log as _logging


@pytest.fixture(autouse=True)
def fresh_log_once():
    """Forget the causes already logged, so "logged once per cause" is observable in each test."""
    with _logging._seen_lock:
        saved = set(_logging._seen)
        _logging._seen.clear()
    yield
    with _logging._seen_lock:
        _logging._seen.clear()
        _logging._seen.update(saved)
