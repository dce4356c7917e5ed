"""fastjson takes orjson's answer only where it is the one the standard library's json gives."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from app import fastjson
from app.extractors.airtable_session import RateLimitedSession
from app.extractors.ratelimit import LocalRateLimiter


class _Text(str):
    __slots__ = ()


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(9 if depth < 4 else 5)
    if choice == 0:
        return rng.choice([True, False])
    if choice == 1:
        return rng.randrange(-(2**63), 2**63)
    if choice == 2:
        return rng.choice([0.1, 1e16, 1e-7, -0.0, 5e-324, 1.7976931348623157e308,
                           rng.uniform(-1e9, 1e9)])
    if choice == 3:
        return "".join(rng.choice("aé🚀\n\"\\\x00\x1f\u2028 /") for _ in range(rng.randrange(8)))
    if choice == 4:
        return rng.randrange(-(10**18) + 1, 10**18)
    if choice in (5, 6):
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{rng.randrange(99)}é": _random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def _same(a: Any, b: Any) -> bool:
    """Equal, with -0.0 told from 0.0 and every int/float kept apart."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def test_dumps_writes_text_json_reads_back_as_the_same_value() -> None:
    rng = random.Random(7)
    written = 0
    for _ in range(3000):
        value = _random_value(rng)
        text = fastjson.dumps(value)
        if text is None:
            continue
        written += 1
        assert _same(json.loads(text), value)
        assert "null" not in text and ", " not in text
    assert written > 2000


@pytest.mark.parametrize("value", [
    float("nan"), [1.0, float("inf")], {"a": -math.inf},  # orjson writes these as null
    None, {"a": None},
    2**64, -(2**63) - 1,
    {1: "int key"},
    "lone \ud800 surrogate",
    datetime(2024, 1, 1, tzinfo=UTC),
    _Text("a str subclass"),
], ids=repr)
def test_dumps_leaves_to_the_caller_what_orjson_cannot_write_as_json_would(value: Any) -> None:
    assert fastjson.dumps(value) is None


def test_loads_reads_what_json_writes_as_json_reads_it() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        text = json.dumps(_random_value(rng), ensure_ascii=rng.random() < 0.5)
        assert _same(fastjson.loads(text), json.loads(text))
        assert _same(fastjson.loads(text.encode()), json.loads(text))


@pytest.mark.parametrize("text", [
    "18446744073709551616", "[-9223372036854775809]", '{"big": 123456789012345678901234567890}',
    "[NaN, Infinity, -Infinity]", "1e400", '"\\ud800"', '{"a": 1, "a": 2}', "-0", "[1E2, 1e-2]",
    '"a number 1234567890123456789 in text"',
], ids=repr)
def test_loads_reads_edge_texts_exactly_as_json_does(text: str) -> None:
    assert _same(fastjson.loads(text), json.loads(text))
    assert _same(fastjson.loads(text.encode()), json.loads(text))


@pytest.mark.parametrize("text", ["", "[1,", "{'a': 1}", "[1] x"])
def test_loads_refuses_bad_text_as_json_does(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        fastjson.loads(text)


class _Canned(requests.adapters.BaseAdapter):
    """Answers every request with ``body`` (as a server sending ``content_type``)."""

    def __init__(self, body: bytes, content_type: str = "application/json") -> None:
        super().__init__()
        self.body, self.content_type = body, content_type

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = requests.Response()
        response.status_code, response._content, response.request = 200, self.body, request
        response.headers["Content-Type"] = self.content_type
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        return response

    def close(self) -> None:
        pass


def _answer(body: bytes, content_type: str = "application/json") -> requests.Response:
    session = RateLimitedSession(LocalRateLimiter(0), base_key="b", penalty_seconds=1.0)
    session.mount("http://", _Canned(body, content_type))
    return session.get("http://airtable.test/v0/app/table")


@pytest.mark.parametrize("body", [
    '{"records": [{"id": "rec1", "fields": {"Name": "é 🚀", "N": 1.5}}]}'.encode(),
    b'{"records": [{"id": "rec1", "fields": {"Big": 123456789012345678901234567890}}]}',
    b'{"records": [{"id": "rec1", "fields": {"N": NaN, "S": "\\ud800"}}]}',
], ids=["plain", "big int", "NaN and a lone surrogate"])
def test_airtable_pages_read_as_requests_reads_them(body: bytes,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[bytes] = []
    loads = fastjson.loads
    monkeypatch.setattr(fastjson, "loads", lambda data: read.append(data) or loads(data))
    assert _same(_answer(body).json(), json.loads(body))
    assert read == [body]  # through fastjson, not requests' own json


def test_a_page_that_is_not_json_fails_as_requests_fails() -> None:
    with pytest.raises(requests.exceptions.JSONDecodeError):
        _answer(b'{"records": [').json()


def test_a_page_in_another_charset_is_read_in_that_charset() -> None:
    body = '{"Name": "café"}'.encode()
    assert _answer(body, "application/json; charset=iso-8859-1").json() == {"Name": "cafÃ©"}
