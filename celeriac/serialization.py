"""Codecs for message bodies and results: json (the default), pickle, msgpack, and compression.

The JSON dialect is kombu's, so payloads are byte-compatible with Celery: ``datetime``,
``date``, ``time``, ``Decimal``, ``UUID`` and ``bytes`` travel as two-key objects
``{"__type__": marker, "__value__": value}`` and come back as the same Python types.
``accept_content`` is enforced in :func:`loads`; nothing outside it is ever decoded.
"""

from __future__ import annotations

import base64
import bz2
import datetime as dt
import json
import lzma
import pickle
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from celeriac.exceptions import ContentDisallowed, DecodeError, EncodeError

__all__ = [
    "Codec",
    "compress",
    "decompress",
    "dumps",
    "json_dumps",
    "json_loads",
    "loads",
    "normalize_accept",
    "register",
]


# --- kombu's JSON dialect ------------------------------------------------------------------


def _envelope(marker: str, value: Any) -> dict[str, Any]:
    return {"__type__": marker, "__value__": value}


def _encode_special(obj: Any) -> Any:
    """Turn the types plain JSON lacks into kombu's ``__type__``/``__value__`` objects."""
    if isinstance(obj, dt.datetime):
        return _envelope("datetime", obj.isoformat())
    if isinstance(obj, dt.date):
        return _envelope("date", obj.isoformat())
    if isinstance(obj, dt.time):
        return _envelope("time", obj.isoformat())
    if isinstance(obj, Decimal):
        return _envelope("decimal", str(obj))
    if isinstance(obj, uuid.UUID):
        return _envelope("uuid", {"hex": obj.hex})
    if isinstance(obj, (bytes, bytearray, memoryview)):
        raw = bytes(obj)
        try:
            return _envelope("bytes", raw.decode("utf-8"))
        except UnicodeDecodeError:
            return _envelope("base64", base64.b64encode(raw).decode("ascii"))
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    json_method = getattr(obj, "__json__", None)
    if callable(json_method):
        return json_method()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "decimal": Decimal,
    "uuid": lambda value: uuid.UUID(hex=value["hex"] if isinstance(value, dict) else value),
    "bytes": lambda value: value.encode("utf-8"),
    "base64": lambda value: base64.b64decode(value),
}


def _decode_special(obj: dict[str, Any]) -> Any:
    if len(obj) == 2 and "__type__" in obj and "__value__" in obj:
        marker = obj["__type__"]
        decoder = _DECODERS.get(marker)
        if decoder is None:
            raise ValueError(f"Unsupported type: {marker!r}")
        return decoder(obj["__value__"])
    return obj


_ENCODER = json.JSONEncoder(default=_encode_special, separators=(",", ":"), ensure_ascii=False)
_DECODER = json.JSONDecoder(object_hook=_decode_special)


def json_dumps(obj: Any) -> str:
    """Serialize ``obj`` as kombu-dialect JSON text."""
    return _ENCODER.encode(obj)


def json_loads(text: str | bytes) -> Any:
    """Parse kombu-dialect JSON text (str or UTF-8 bytes)."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8")
    return _DECODER.decode(text)


# --- the codec registry --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Codec:
    """One serializer: its short name, MIME type, text encoding and two functions."""

    name: str
    content_type: str
    content_encoding: str
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]


_BY_NAME: dict[str, Codec] = {}
_BY_CONTENT_TYPE: dict[str, Codec] = {}


def register(
    name: str,
    encoder: Callable[[Any], bytes | str],
    decoder: Callable[[bytes], Any],
    content_type: str,
    content_encoding: str = "utf-8",
) -> None:
    """Register a serializer under ``name`` (for ``task_serializer`` and ``accept_content``)."""

    def encode(obj: Any) -> bytes:
        data = encoder(obj)
        return data.encode(content_encoding) if isinstance(data, str) else data

    codec = Codec(name, content_type, content_encoding, encode, decoder)
    _BY_NAME[name] = codec
    _BY_CONTENT_TYPE[content_type] = codec


def _pickle_dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.DEFAULT_PROTOCOL)


def _msgpack_codec() -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    def encode(obj: Any) -> bytes:
        import msgpack  # optional extra, imported only when msgpack is used

        return msgpack.packb(obj, use_bin_type=True, default=_encode_special)  # type: ignore[no-any-return]

    def decode(data: bytes) -> Any:
        import msgpack

        return msgpack.unpackb(data, raw=False, object_hook=_decode_special)

    return encode, decode


register("json", lambda obj: json_dumps(obj).encode("utf-8"), json_loads, "application/json")
register("pickle", _pickle_dumps, pickle.loads, "application/x-python-serialize", "binary")
register("msgpack", *_msgpack_codec(), "application/x-msgpack", "binary")
# Raw bytes pass through untouched (Celery's 'application/data').
register("raw", lambda obj: bytes(obj), bytes, "application/data", "binary")

#: The codecs above: pure functions of their input (a codec registered later may not be,
#: a signing one say, so its output is never reused).
_BUILTIN = frozenset(_BY_NAME.values())
_empty_bodies: dict[str, tuple[Codec, tuple[bytes, str, str]]] = {}


def codec_for(name_or_type: str) -> Codec:
    """The codec registered under a short name or a MIME type."""
    codec = _BY_NAME.get(name_or_type) or _BY_CONTENT_TYPE.get(name_or_type)
    if codec is None:
        known = ", ".join(sorted(_BY_NAME))
        raise EncodeError(f"No serializer named {name_or_type!r} (known: {known})")
    return codec


def normalize_accept(names: Iterable[str] | None) -> frozenset[str]:
    """Turn an ``accept_content`` list (names or MIME types) into a set of MIME types."""
    if names is None:
        return frozenset(_BY_CONTENT_TYPE)
    result = set()
    for name in names:
        codec = _BY_NAME.get(name)
        result.add(codec.content_type if codec else name)
    return frozenset(result)


def dumps(obj: Any, serializer: str) -> tuple[bytes, str, str]:
    """Serialize ``obj``; returns ``(payload, content_type, content_encoding)``.

    Raises:
        EncodeError: the value cannot be represented by the serializer.
    """
    codec = codec_for(serializer)
    try:
        return codec.encode(obj), codec.content_type, codec.content_encoding
    except Exception as exc:
        raise EncodeError(f"Cannot serialize with {codec.name}: {exc}") from exc


def dumps_empty_call(serializer: str) -> tuple[bytes, str, str]:
    """``dumps`` of a task body without arguments nor workflow, ``[[], {}, {"callbacks":
    None, ...}]``: the same bytes every time, so the built-in codecs encode it once."""
    codec = codec_for(serializer)
    cached = _empty_bodies.get(serializer)
    if cached is not None and cached[0] is codec:  # (not a codec registered since)
        return cached[1]
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    encoded = dumps([[], {}, embed], serializer)
    if codec in _BUILTIN:
        _empty_bodies[serializer] = (codec, encoded)
    return encoded


def loads(
    payload: bytes | str,
    content_type: str,
    content_encoding: str = "utf-8",
    *,
    accept: frozenset[str] | None = None,
) -> Any:
    """Deserialize a payload, refusing content types outside ``accept`` (MIME types).

    Raises:
        ContentDisallowed: ``content_type`` is not accepted.
        DecodeError: the payload is malformed, or the content type is unknown.
    """
    if accept is not None and content_type not in accept:
        raise ContentDisallowed(
            f"Refusing to deserialize untrusted content of type {content_type} "
            f"(accepted: {', '.join(sorted(accept))})"
        )
    codec = _BY_CONTENT_TYPE.get(content_type)
    if codec is None:
        raise DecodeError(f"Unknown content type {content_type!r}")
    if isinstance(payload, str):
        payload = payload.encode(content_encoding if content_encoding != "binary" else "utf-8")
    try:
        return codec.decode(payload)
    except Exception as exc:
        raise DecodeError(f"Cannot decode {content_type} payload: {exc}") from exc


# --- compression (the header carries the MIME type, as kombu sends it) ---------------------

_COMPRESSORS: dict[str, tuple[str, Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    "zlib": ("application/x-gzip", zlib.compress, zlib.decompress),
    "gzip": ("application/x-gzip", zlib.compress, zlib.decompress),
    "bzip2": ("application/x-bz2", bz2.compress, bz2.decompress),
    "lzma": ("application/x-lzma", lzma.compress, lzma.decompress),
    "xz": ("application/x-lzma", lzma.compress, lzma.decompress),
}
_DECOMPRESSORS = {mime: decode for mime, _, decode in _COMPRESSORS.values()}


def compress(payload: bytes, method: str) -> tuple[bytes, str]:
    """Compress ``payload`` with ``method`` (zlib, gzip, bzip2, lzma); returns (data, mime)."""
    try:
        mime, encode, _ = _COMPRESSORS[method]
    except KeyError:
        raise EncodeError(f"Unknown compression {method!r} (known: {', '.join(_COMPRESSORS)})")
    return encode(payload), mime


def decompress(payload: bytes, mime: str) -> bytes:
    """Undo :func:`compress`, given the MIME type from the ``compression`` header."""
    decode = _DECOMPRESSORS.get(mime) or (_COMPRESSORS[mime][2] if mime in _COMPRESSORS else None)
    if decode is None:
        raise DecodeError(f"Unknown compression {mime!r}")
    try:
        return decode(payload)
    except Exception as exc:
        raise DecodeError(f"Cannot decompress {mime} payload: {exc}") from exc
