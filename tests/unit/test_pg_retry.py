"""retry_while_down: waits out PostgreSQL being unavailable, passes every other error, stops on shutdown."""

from __future__ import annotations

import threading

import psycopg
import pytest

from streams.pg import retry_while_down


def test_retries_until_postgres_answers() -> None:
    calls: list[int] = []

    def write() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise psycopg.OperationalError("connection refused")
        return 7

    assert retry_while_down(write, what="test", backoff=0.001) == 7
    assert len(calls) == 3


def test_other_errors_pass_through_at_once() -> None:
    calls: list[int] = []

    def write() -> int:
        calls.append(1)
        raise psycopg.errors.UniqueViolation("duplicate key")

    with pytest.raises(psycopg.errors.UniqueViolation):
        retry_while_down(write, what="test", backoff=0.001)
    assert len(calls) == 1


def test_stopping_ends_the_wait_with_the_last_error() -> None:
    stopping = threading.Event()
    calls: list[int] = []

    def write() -> int:
        calls.append(1)
        if len(calls) == 2:
            stopping.set()
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        retry_while_down(write, what="test", unavailable=(ConnectionError,), backoff=0.001, stopping=stopping)
    assert len(calls) == 2
