"""Serializers and compression, checked against kombu itself (Celery's serialization layer).

celeriac must read what kombu writes and write what kombu reads: the JSON dialect with its
``{"__type__", "__value__"}`` envelopes, the MIME types, and the ``compression`` header values.
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
import uuid
from decimal import Decimal
from typing import Any

import kombu.compression
import kombu.serialization
import msgpack
import pytest
from kombu.utils import json as kombu_json

from celeriac import serialization
from celeriac.exceptions import ContentDisallowed, DecodeError, EncodeError, SerializationError
from celeriac.serialization import (
    compress,
    decompress,
    dumps,
    json_dumps,
    json_loads,
    loads,
    normalize_accept,
)

AWARE = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc)
AWARE_OFFSET = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
NAIVE = dt.datetime(2024, 5, 6, 7, 8, 9, 123456)
UID = uuid.UUID("12345678-1234-5678-1234-567812345678")

# Values whose JSON form is one of kombu's envelopes (and a few plain ones for contrast).
SPECIAL_VALUES: dict[str, Any] = {
    "datetime-aware": AWARE,
    "datetime-offset": AWARE_OFFSET,
    "datetime-naive": NAIVE,
    "date": dt.date(2024, 5, 6),
    "time": dt.time(7, 8, 9, 500),
    "decimal": Decimal("3.14159265358979323846"),
    "uuid": UID,
    "bytes-utf8": "héllo wörld".encode(),
    "bytes-non-utf8": b"\xff\xfe\x00\x80binary",
    "nested": {
        "when": [AWARE, {"day": dt.date(2020, 2, 29)}],
        "ids": [UID, uuid.UUID(int=0)],
        "money": {"total": Decimal("-0.01"), "raw": b"\x00\x01"},
        "plain": [1, 2.5, "three", None, True, {"deep": [[[]]]}],
    },
    "plain-list": [1, "two", None, False, 3.5],
    "unicode": "ünïcödé ✓",
}

# The marker kombu puts in ``__type__`` for each value above.
MARKERS = {
    "datetime-aware": "datetime",
    "datetime-offset": "datetime",
    "datetime-naive": "datetime",
    "date": "date",
    "time": "time",
    "decimal": "decimal",
    "uuid": "uuid",
    "bytes-utf8": "bytes",
    "bytes-non-utf8": "base64",
}


def kombu_loads(payload: bytes, content_type: str, content_encoding: str) -> Any:
    """kombu's decoder with this one content type explicitly accepted (pickle/msgpack are off)."""
    return kombu.serialization.loads(payload, content_type, content_encoding, accept=[content_type])


def _ids(mapping: dict[str, Any]) -> list[str]:
    return list(mapping)


# --- kombu's JSON dialect --------------------------------------------------------------------


@pytest.mark.parametrize("key", _ids(SPECIAL_VALUES))
def test_json_round_trip(key: str) -> None:
    value = SPECIAL_VALUES[key]
    decoded = json_loads(json_dumps(value))
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize("key", _ids(MARKERS))
def test_json_uses_kombu_envelope(key: str) -> None:
    raw = json.loads(json_dumps(SPECIAL_VALUES[key]))
    assert set(raw) == {"__type__", "__value__"}
    assert raw["__type__"] == MARKERS[key]


def test_json_envelope_values_match_kombu() -> None:
    """Not only the marker: the ``__value__`` itself is what kombu writes."""
    for key in MARKERS:
        value = SPECIAL_VALUES[key]
        assert json.loads(json_dumps(value)) == json.loads(kombu_json.dumps(value)), key


def test_json_datetime_keeps_its_offset_and_naivety() -> None:
    assert json_loads(json_dumps(AWARE_OFFSET)).utcoffset() == dt.timedelta(hours=-5)
    assert json_loads(json_dumps(NAIVE)).tzinfo is None


def test_json_uuid_travels_as_hex_object() -> None:
    assert json.loads(json_dumps(UID)) == {"__type__": "uuid", "__value__": {"hex": UID.hex}}


def test_json_tuples_become_lists() -> None:
    assert json_loads(json_dumps((1, (2, 3)))) == [1, [2, 3]]


def test_json_loads_accepts_bytes() -> None:
    assert json_loads(json_dumps({"d": AWARE}).encode("utf-8")) == {"d": AWARE}


def test_json_plain_dict_with_other_keys_is_left_alone() -> None:
    value = {"__type__": "datetime", "__value__": "2024-01-01T00:00:00", "extra": 1}
    assert json_loads(json.dumps(value)) == value


def test_json_unknown_marker_is_refused() -> None:
    with pytest.raises(ValueError):
        json_loads('{"__type__": "nope", "__value__": 1}')


def test_json_uses_dunder_json_method() -> None:
    class Point:
        def __json__(self) -> dict[str, int]:
            return {"x": 1, "y": 2}

    assert json_loads(json_dumps([Point()])) == [{"x": 1, "y": 2}]
    assert json.loads(kombu_json.dumps([Point()])) == [{"x": 1, "y": 2}]


# --- byte-level compatibility with kombu -----------------------------------------------------


@pytest.mark.parametrize("key", _ids(SPECIAL_VALUES))
def test_kombu_reads_celeriac_json(key: str) -> None:
    value = SPECIAL_VALUES[key]
    assert kombu_json.loads(json_dumps(value)) == value


@pytest.mark.parametrize("key", _ids(SPECIAL_VALUES))
def test_celeriac_reads_kombu_json(key: str) -> None:
    value = SPECIAL_VALUES[key]
    decoded = json_loads(kombu_json.dumps(value))
    assert decoded == value
    assert type(decoded) is type(value)


def test_kombu_serializer_registry_reads_celeriac_payload() -> None:
    """Through kombu's own registry, as a Celery worker would decode a celeriac body."""
    value = SPECIAL_VALUES["nested"]
    payload, content_type, content_encoding = dumps(value, "json")
    assert (content_type, content_encoding) == ("application/json", "utf-8")
    assert kombu.serialization.loads(payload, content_type, content_encoding) == value


def test_celeriac_loads_reads_kombu_registry_payload() -> None:
    value = SPECIAL_VALUES["nested"]
    content_type, content_encoding, payload = kombu.serialization.dumps(value, serializer="json")
    assert loads(payload, content_type, content_encoding) == value


@pytest.mark.parametrize("name", ["json", "pickle", "msgpack"])
def test_content_type_and_encoding_match_kombu(name: str) -> None:
    _, content_type, content_encoding = dumps([1, "a"], name)
    kombu_type, kombu_encoding, _ = kombu.serialization.dumps([1, "a"], serializer=name)
    assert (content_type, content_encoding) == (kombu_type, kombu_encoding)


# --- pickle and msgpack ----------------------------------------------------------------------


def test_pickle_round_trip() -> None:
    value = {"args": [AWARE, UID, Decimal("1.5"), b"\xff", (1, 2), {3, 4}]}
    payload, content_type, content_encoding = dumps(value, "pickle")
    assert (content_type, content_encoding) == ("application/x-python-serialize", "binary")
    assert loads(payload, content_type, content_encoding) == value
    assert pickle.loads(payload) == value
    assert kombu_loads(payload, content_type, content_encoding) == value


def test_msgpack_round_trip_with_datetime_inside() -> None:
    value = {"when": AWARE, "day": dt.date(2024, 1, 2), "items": [1, "x", b"\x00\xff", None]}
    payload, content_type, content_encoding = dumps(value, "msgpack")
    assert (content_type, content_encoding) == ("application/x-msgpack", "binary")
    assert loads(payload, content_type, content_encoding) == value


def test_msgpack_plain_values_are_compatible_with_kombu() -> None:
    value = {"a": [1, 2.5, "three", None, True], "b": b"\x00\xff", "c": {"d": []}}
    payload, content_type, content_encoding = dumps(value, "msgpack")
    assert kombu_loads(payload, content_type, content_encoding) == value
    k_type, k_encoding, k_payload = kombu.serialization.dumps(value, serializer="msgpack")
    assert loads(k_payload, k_type, k_encoding) == value
    assert msgpack.unpackb(payload, raw=False) == value


def test_register_adds_a_named_serializer() -> None:
    serialization.register(
        "test-upper",
        lambda obj: json.dumps(obj).upper(),
        lambda data: json.loads(data.lower()),
        "application/x-test-upper",
    )
    payload, content_type, content_encoding = dumps({"k": "v"}, "test-upper")
    assert (payload, content_type, content_encoding) == (
        b'{"K": "V"}',
        "application/x-test-upper",
        "utf-8",
    )
    assert loads(payload, content_type, content_encoding) == {"k": "v"}
    assert normalize_accept(["test-upper"]) == {"application/x-test-upper"}


def test_raw_serializer_passes_bytes_through() -> None:
    payload, content_type, _ = dumps(b"\x00raw", "raw")
    assert content_type == "application/data"
    assert loads(payload, content_type, "binary") == b"\x00raw"


# --- accept_content --------------------------------------------------------------------------


def test_normalize_accept_maps_names_to_mime_types() -> None:
    assert normalize_accept(["json"]) == {"application/json"}
    assert normalize_accept(["json", "pickle", "msgpack"]) == {
        "application/json",
        "application/x-python-serialize",
        "application/x-msgpack",
    }
    assert normalize_accept(["application/x-yaml"]) == {"application/x-yaml"}
    assert "application/json" in normalize_accept(None)


def test_loads_refuses_content_outside_accept() -> None:
    payload, content_type, content_encoding = dumps({"x": 1}, "pickle")
    with pytest.raises(ContentDisallowed):
        loads(payload, content_type, content_encoding, accept=normalize_accept(["json"]))


def test_loads_refuses_before_touching_the_payload() -> None:
    """A refused pickle payload must never be unpickled (it could run code)."""

    class Boom:
        def __reduce__(self) -> Any:
            return (pytest.fail, ("pickle payload was deserialized",))

    payload = pickle.dumps(Boom())
    with pytest.raises(ContentDisallowed):
        loads(payload, "application/x-python-serialize", "binary", accept=frozenset({"a/b"}))


def test_loads_allows_content_inside_accept() -> None:
    payload, content_type, content_encoding = dumps({"x": 1}, "json")
    accept = normalize_accept(["json"])
    assert loads(payload, content_type, content_encoding, accept=accept) == {"x": 1}


def test_content_disallowed_is_a_serialization_error() -> None:
    assert issubclass(ContentDisallowed, SerializationError)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"__type__": "nope", "__value__": 1}', "application/json"),
        (b'{"__type__": "datetime", "__value__": "not a date"}', "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"not a pickle", "application/x-python-serialize"),
        (b"\xc1", "application/x-msgpack"),
    ],
    ids=["json-syntax", "json-marker", "json-bad-datetime", "json-not-utf8", "pickle", "msgpack"],
)
def test_malformed_payload_raises_decode_error(payload: bytes, content_type: str) -> None:
    with pytest.raises(DecodeError):
        loads(payload, content_type, "utf-8")


def test_unknown_content_type_raises_decode_error() -> None:
    with pytest.raises(DecodeError):
        loads(b"x", "application/x-unknown", "utf-8")


def test_unknown_serializer_name_raises_encode_error() -> None:
    with pytest.raises(EncodeError):
        dumps({"x": 1}, "no-such-serializer")


def test_unserializable_object_under_json_raises_encode_error() -> None:
    with pytest.raises(EncodeError):
        dumps({"x": object()}, "json")


def test_encode_and_decode_errors_are_distinct() -> None:
    assert not issubclass(EncodeError, DecodeError)
    assert not issubclass(DecodeError, EncodeError)


# --- compression -----------------------------------------------------------------------------

PAYLOAD = json_dumps({"args": list(range(200)), "text": "x" * 500}).encode("utf-8")

COMPRESSIONS = {
    "zlib": "application/x-gzip",
    "gzip": "application/x-gzip",
    "bzip2": "application/x-bz2",
    "lzma": "application/x-lzma",
}


@pytest.mark.parametrize("method", list(COMPRESSIONS))
def test_compression_round_trip(method: str) -> None:
    data, mime = compress(PAYLOAD, method)
    assert mime == COMPRESSIONS[method]
    assert data != PAYLOAD
    assert len(data) < len(PAYLOAD)
    assert decompress(data, mime) == PAYLOAD


@pytest.mark.parametrize("method", list(COMPRESSIONS))
def test_compression_header_matches_kombu(method: str) -> None:
    _, kombu_mime = kombu.compression.compress(PAYLOAD, method)
    assert compress(PAYLOAD, method)[1] == kombu_mime


@pytest.mark.parametrize("method", list(COMPRESSIONS))
def test_decompress_reads_kombu_compressed_data(method: str) -> None:
    data, mime = kombu.compression.compress(PAYLOAD, method)
    assert decompress(data, mime) == PAYLOAD


@pytest.mark.parametrize("method", list(COMPRESSIONS))
def test_kombu_reads_celeriac_compressed_data(method: str) -> None:
    data, mime = compress(PAYLOAD, method)
    assert kombu.compression.decompress(data, mime) == PAYLOAD


def test_unknown_compression_raises_encode_error() -> None:
    with pytest.raises(EncodeError):
        compress(PAYLOAD, "no-such-compression")


def test_unknown_compression_mime_raises_decode_error() -> None:
    with pytest.raises(DecodeError):
        decompress(PAYLOAD, "application/x-unknown")


def test_corrupt_compressed_data_raises_decode_error() -> None:
    with pytest.raises(DecodeError):
        decompress(b"definitely not zlib", "application/x-gzip")
