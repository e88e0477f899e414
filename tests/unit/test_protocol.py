"""Task message protocol v2 (and v1), checked against what the real Celery builds and reads.

Celery is a test-only dependency here: ``app.amqp.as_task_v2`` is the function a Celery client
uses to lay out a task message, so for the same call celeriac's ``build_task_message`` must give
the same headers, the same ``correlation_id``/``reply_to`` and the same body; and celeriac's
``parse_task`` must read every field of a message Celery built.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import uuid
import zlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import celery
import kombu.compression
import kombu.serialization
import pytest
from celery.app.amqp import task_message

from celeriac import serialization
from celeriac.exceptions import ContentDisallowed, DecodeError, EncodeError
from celeriac.message import Message
from celeriac.protocol import TaskEnvelope, build_task_message, parse_task, saferepr

UTC = dt.timezone.utc
NOW = dt.datetime(2024, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
JSON_ONLY = serialization.normalize_accept(["json"])

SIGNATURE = {
    "task": "tests.callback",
    "args": [1],
    "kwargs": {"k": "v"},
    "options": {"task_id": "cb-id"},
    "subtask_type": None,
    "immutable": False,
}

# Calls to make on both sides. Every key is a parameter of both ``build_task_message`` and
# Celery's ``AMQP.as_task_v2`` (checked by ``test_compared_parameters_exist_on_both_sides``).
CALLS: dict[str, dict[str, Any]] = {
    "minimal": {
        "task_id": "5f0c8ad2-6f43-4b51-9f4a-5f2d7a1c0001",
        "name": "tests.add",
        "args": (2, 3),
        "kwargs": {},
    },
    "no-arguments": {
        "task_id": "5f0c8ad2-6f43-4b51-9f4a-5f2d7a1c0002",
        "name": "tests.noop",
        "args": (),
        "kwargs": None,
    },
    "full": {
        "task_id": "5f0c8ad2-6f43-4b51-9f4a-5f2d7a1c0003",
        "name": "tests.full",
        "args": [1, "two", [3, 4], {"five": 5.5}, None, True],
        "kwargs": {"key": "value", "n": 7},
        "eta": NOW + dt.timedelta(seconds=30),
        "expires": NOW + dt.timedelta(hours=1),
        "time_limit": 60,
        "soft_time_limit": 45,
        "root_id": "root-task-id",
        "parent_id": "parent-task-id",
        "group_id": "group-id",
        "group_index": 4,
        "retries": 3,
        "origin": "gen4242@sender.example",
        "shadow": "shadow-name",
        "ignore_result": True,
        "reply_to": "a3f0e8b2-0000-3000-8000-000000000000",
        "callbacks": [SIGNATURE],
        "errbacks": [dict(SIGNATURE, task="tests.errback")],
        "chain": [dict(SIGNATURE, task="tests.step3"), dict(SIGNATURE, task="tests.step2")],
        "chord": dict(SIGNATURE, task="tests.chord_body"),
    },
    "non-utc-offsets": {
        "task_id": "5f0c8ad2-6f43-4b51-9f4a-5f2d7a1c0004",
        "name": "tests.tz",
        "args": [5],
        "kwargs": {"x": 1},
        "eta": dt.datetime(
            2024, 3, 4, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))
        ),
        "expires": dt.datetime(2024, 3, 4, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=-7))),
        "time_limit": None,
        "soft_time_limit": 10.5,
        "retries": 0,
        "ignore_result": False,
    },
}


@pytest.fixture(scope="module")
def celery_app() -> Iterator[celery.Celery]:
    app = celery.Celery("t", broker="memory://", set_as_current=False)
    yield app
    app.close()


def theirs(app: celery.Celery, **call: Any) -> task_message:
    """The message Celery lays out for this call."""
    return app.amqp.as_task_v2(**call)


def ours(**call: Any) -> Message:
    return build_task_message(**call)


def decoded_body(message: Message) -> Any:
    payload = message.body
    if message.headers.get("compression"):
        payload = serialization.decompress(payload, message.headers["compression"])
    return serialization.loads(payload, message.content_type, message.content_encoding)


def as_lists(body: Any) -> list[Any]:
    """Celery's body tuple ``(args, kwargs, embed)`` as it looks after a JSON round trip."""
    args, kwargs, embed = body
    return [list(args), dict(kwargs), dict(embed)]


def celery_wire_message(
    app: celery.Celery, *, compression: str | None = None, **call: Any
) -> Message:
    """A message built by Celery and serialized by kombu, as it arrives from a Celery client."""
    built = theirs(app, **call)
    content_type, content_encoding, body = kombu.serialization.dumps(built.body, serializer="json")
    payload = body.encode(content_encoding) if isinstance(body, str) else body
    headers = dict(built.headers)
    if compression:
        payload, headers["compression"] = kombu.compression.compress(payload, compression)
    return Message(payload, headers, dict(built.properties), content_type, content_encoding)


# --- (1) build_task_message == Celery's as_task_v2 -------------------------------------------


def test_compared_parameters_exist_on_both_sides(celery_app: celery.Celery) -> None:
    celery_params = set(inspect.signature(celery_app.amqp.as_task_v2).parameters)
    celeriac_params = set(inspect.signature(build_task_message).parameters)
    used = {key for call in CALLS.values() for key in call}
    assert used <= celery_params
    assert used <= celeriac_params


@pytest.mark.parametrize("case", list(CALLS))
def test_header_keys_equal_celery(celery_app: celery.Celery, case: str) -> None:
    call = CALLS[case]
    assert set(ours(**call).headers) == set(theirs(celery_app, **call).headers)


@pytest.mark.parametrize("case", list(CALLS))
def test_header_values_equal_celery(celery_app: celery.Celery, case: str) -> None:
    call = CALLS[case]
    mine, celery_headers = ours(**call).headers, theirs(celery_app, **call).headers
    differences = {
        key: (mine.get(key), celery_headers.get(key))
        for key in set(mine) | set(celery_headers)
        if mine.get(key) != celery_headers.get(key)
        or type(mine.get(key)) is not type(celery_headers.get(key))
    }
    assert differences == {}


@pytest.mark.parametrize("case", list(CALLS))
def test_properties_match_celery(celery_app: celery.Celery, case: str) -> None:
    """``correlation_id`` and ``reply_to``; the rest Celery/kombu add at publish time."""
    call = CALLS[case]
    mine, celery_props = ours(**call).properties, theirs(celery_app, **call).properties
    assert {key: mine.get(key) for key in celery_props} == celery_props
    assert set(mine) - set(celery_props) <= {"delivery_mode", "priority", "expiration"}


@pytest.mark.parametrize("case", list(CALLS))
def test_body_matches_celery(celery_app: celery.Celery, case: str) -> None:
    call = CALLS[case]
    message = ours(**call)
    celery_body = as_lists(theirs(celery_app, **call).body)
    assert decoded_body(message) == celery_body
    # ... and a Celery worker (kombu's decoder) reads the same thing from celeriac's bytes.
    kombu_view = kombu.serialization.loads(
        message.body, message.content_type, message.content_encoding
    )
    assert kombu_view == celery_body


def test_full_call_header_values_spelled_out(celery_app: celery.Celery) -> None:
    """The individual headers that are easy to get wrong, against Celery's values."""
    call = CALLS["full"]
    mine, celery_headers = ours(**call).headers, theirs(celery_app, **call).headers
    assert mine["timelimit"] == celery_headers["timelimit"] == [60, 45]  # [hard, soft]
    assert mine["eta"] == celery_headers["eta"] == "2024-03-04T05:06:37.891011+00:00"
    assert mine["expires"] == celery_headers["expires"] == "2024-03-04T06:06:07.891011+00:00"
    assert mine["root_id"] == celery_headers["root_id"] == "root-task-id"
    assert mine["parent_id"] == celery_headers["parent_id"] == "parent-task-id"
    assert mine["group"] == celery_headers["group"] == "group-id"
    assert mine["group_index"] == celery_headers["group_index"] == 4
    assert mine["retries"] == celery_headers["retries"] == 3
    assert mine["shadow"] == celery_headers["shadow"] == "shadow-name"
    assert mine["ignore_result"] is celery_headers["ignore_result"] is True
    assert mine["lang"] == celery_headers["lang"] == "py"
    assert mine["origin"] == celery_headers["origin"] == "gen4242@sender.example"
    assert mine["argsrepr"] == celery_headers["argsrepr"]
    assert mine["kwargsrepr"] == celery_headers["kwargsrepr"] == "{'key': 'value', 'n': 7}"
    assert mine["stamps"] == celery_headers["stamps"] == {}
    assert mine["stamped_headers"] is celery_headers["stamped_headers"] is None
    assert mine["replaced_task_nesting"] == celery_headers["replaced_task_nesting"] == 0


def test_defaults_match_celery(celery_app: celery.Celery) -> None:
    """root_id defaults to the task id, origin to ``gen<pid>@<host>``, nulls where unset."""
    call = CALLS["minimal"]
    mine, celery_headers = ours(**call).headers, theirs(celery_app, **call).headers
    assert mine["root_id"] == celery_headers["root_id"] == call["task_id"]
    assert mine["origin"] == celery_headers["origin"]
    assert mine["origin"].startswith("gen") and "@" in mine["origin"]
    for key in ("eta", "expires", "group", "group_index", "parent_id", "shadow"):
        assert mine[key] is celery_headers[key] is None, key
    assert mine["timelimit"] == celery_headers["timelimit"] == [None, None]
    assert mine["retries"] == celery_headers["retries"] == 0
    assert mine["ignore_result"] is celery_headers["ignore_result"] is False
    assert ours(**call).properties["reply_to"] == theirs(celery_app, **call).properties["reply_to"]


def test_countdown_and_numeric_expires_match_celery(celery_app: celery.Celery) -> None:
    """Celery turns countdown/expires seconds into aware datetimes; celeriac takes datetimes."""
    base = {"task_id": "countdown-id", "name": "tests.later", "args": [1], "kwargs": {}}
    celery_headers = theirs(celery_app, **base, countdown=90, expires=600, now=NOW).headers
    mine = ours(
        **base, eta=NOW + dt.timedelta(seconds=90), expires=NOW + dt.timedelta(seconds=600)
    ).headers
    assert mine["eta"] == celery_headers["eta"]
    assert mine["expires"] == celery_headers["expires"]


def test_stamping_headers_passed_through_headers_match_celery(celery_app: celery.Celery) -> None:
    base = {"task_id": "stamped-id", "name": "tests.stamped", "args": (), "kwargs": {}}
    celery_headers = theirs(
        celery_app, **base, stamped_headers=["mystamp"], mystamp="stamp-value"
    ).headers
    mine = ours(
        **base, headers={"stamped_headers": ["mystamp"], "stamps": {"mystamp": "stamp-value"}}
    ).headers
    assert mine == celery_headers


def test_naive_eta_and_expires_headers_match_celery(celery_app: celery.Celery) -> None:
    naive = dt.datetime(2024, 3, 4, 5, 6, 7)
    call = {"task_id": "naive-id", "name": "tests.naive", "args": [], "kwargs": {}}
    mine = ours(**call, eta=naive, expires=naive).headers
    celery_headers = theirs(celery_app, **call, eta=naive, expires=naive).headers
    assert (mine["eta"], mine["expires"]) == (celery_headers["eta"], celery_headers["expires"])


# argsrepr/kwargsrepr: the same saferepr as Celery's, for every kind of argument.
def _repr_mismatch(case: str, reason: str) -> Any:
    # These once differed from Celery; the reason stays as the note of what is compared.
    return pytest.param(case, id=case)


REPR_CALLS: dict[str, tuple[Any, Any]] = {
    "scalars": ((1, "two", 3.5, None, True, -7), {}),
    "list-args": ([1, [2, 3], {"k": "v"}], {}),
    "one-kwarg": ((), {"only": [1, 2]}),
    "sorted-kwargs": ((), {"a": 1, "b": 2}),
    "text-and-bytes": ((b"raw", "ünïcode", ""), {}),
    "rich-types": ((dt.datetime(2024, 1, 2, 3, 4, 5), Decimal("1.50"), uuid.UUID(int=1)), {}),
    "sets-and-tuples": (({1, 2, 3}, (4, 5), frozenset()), {}),
    "short-string": (("x" * 100,), {}),
    "empty": ((), {}),
    "kwargs-insertion-order": ((), {"b": 1, "a": 2}),
    "big-int": ((10**50,), {}),
    "deep-nesting": (([[[[[[[[1]]]]]]]],), {}),
    "single-quote": (("it's",), {}),
    "long-list": ((list(range(100)),), {}),
    "long-string": (("a" * 2000,), {}),
    "empty-list-args": ([], {}),
}

REPR_PARAMS = [
    *[
        pytest.param(case, id=case)
        for case in (
            "scalars",
            "list-args",
            "one-kwarg",
            "sorted-kwargs",
            "text-and-bytes",
            "rich-types",
            "sets-and-tuples",
            "short-string",
            "empty",
        )
    ],
    _repr_mismatch(
        "kwargs-insertion-order",
        "kwargsrepr: celeriac's reprlib-based saferepr sorts dict keys "
        "(\"{'a': 2, 'b': 1}\"); Celery keeps insertion order (\"{'b': 1, 'a': 2}\")",
    ),
    _repr_mismatch(
        "big-int",
        "argsrepr: reprlib's maxlong=40 elides the digits of a 51-digit int "
        "('(100000000000000000...0000000000000000000,)'); Celery prints the whole int",
    ),
    _repr_mismatch(
        "deep-nesting",
        "argsrepr: Celery's saferepr stops at 3 levels ('([[[...]]],)'); "
        "celeriac's maxlevel=6 gives '([[[[[[...]]]]]],)'",
    ),
    _repr_mismatch(
        "single-quote",
        "argsrepr: Celery always quotes str with ' and escapes inner quotes "
        '("(\'it\\\\\'s\',)"); celeriac uses repr() ("(\\"it\'s\\",)")',
    ),
    _repr_mismatch(
        "long-list",
        "argsrepr: reprlib's maxlist=64 cuts a 100-item list to 64 items + '...'; "
        "Celery prints every item while under argsrepr_maxsize (1024)",
    ),
    _repr_mismatch(
        "long-string",
        "argsrepr: Celery cuts the string itself at 1024 chars and closes it "
        '("...aaa...\', ...", 1034 chars); '
        "celeriac cuts the whole repr to 1024 chars ending '...'",
    ),
    _repr_mismatch(
        "empty-list-args",
        "argsrepr: Celery replaces empty args by a tuple (`args = args or ()`) -> '()'; "
        "celeriac reprs the empty list it was given -> '[]'",
    ),
]


@pytest.mark.parametrize("case", REPR_PARAMS)
def test_argsrepr_and_kwargsrepr_match_celery(celery_app: celery.Celery, case: str) -> None:
    args, kwargs = REPR_CALLS[case]
    call = {"task_id": "repr-id", "name": "tests.repr", "args": args, "kwargs": kwargs}
    mine = ours(serializer="pickle", **call).headers
    celery_headers = theirs(celery_app, **call).headers
    assert (mine["argsrepr"], mine["kwargsrepr"]) == (
        celery_headers["argsrepr"],
        celery_headers["kwargsrepr"],
    )


def test_repr_cases_are_all_parametrized() -> None:
    assert {param.values[0] for param in REPR_PARAMS} == set(REPR_CALLS)


# What a real Celery client publishes (send_task through kombu's in-memory transport).


def _published_by_celery(app: celery.Celery, queue: str, **options: Any) -> Any:
    app.send_task(queue=queue, **options)
    with app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue)
        try:
            received = simple.get(timeout=1)
            received.ack()
        finally:
            simple.close()
    return received


def test_publish_time_properties_match_celery_send_task(celery_app: celery.Celery) -> None:
    task_id = str(uuid.uuid4())
    expires = dt.datetime.now(UTC) + dt.timedelta(hours=1)
    call: dict[str, Any] = {
        "task_id": task_id,
        "name": "tests.published",
        "args": (1, 2),
        "kwargs": {"k": "v"},
        "expires": expires,
        "ignore_result": True,
    }
    received = _published_by_celery(
        celery_app, "q-" + task_id, priority=5, compression="zlib", **call
    )
    mine = ours(priority=5, compression="zlib", **call)

    expected_headers = dict(received.headers)
    assert mine.headers == expected_headers
    assert mine.headers["compression"] == "application/x-gzip"
    assert (mine.content_type, mine.content_encoding) == (
        received.content_type,
        received.content_encoding,
    )
    for key in ("correlation_id", "delivery_mode", "priority"):
        assert mine.properties[key] == received.properties[key], key
    assert isinstance(mine.properties["expiration"], str)
    assert abs(int(mine.properties["expiration"]) - int(received.properties["expiration"])) < 60_000
    assert decoded_body(mine) == received.decode()


def test_naive_expires_expiration_matches_celery_send_task(celery_app: celery.Celery) -> None:
    task_id = str(uuid.uuid4())
    naive_expires = dt.datetime.now(UTC).replace(tzinfo=None) + dt.timedelta(hours=1)
    call = {"task_id": task_id, "name": "tests.naive_expires", "args": (), "kwargs": {}}
    received = _published_by_celery(
        celery_app, "q-" + task_id, expires=naive_expires, ignore_result=True, **call
    )
    mine = ours(expires=naive_expires, **call)
    assert abs(int(mine.properties["expiration"]) - int(received.properties["expiration"])) < 60_000


def test_past_expires_is_clamped_to_zero_like_celery(celery_app: celery.Celery) -> None:
    task_id = str(uuid.uuid4())
    past = dt.datetime.now(UTC) - dt.timedelta(minutes=5)
    call = {"task_id": task_id, "name": "tests.past", "args": (), "kwargs": {}}
    received = _published_by_celery(
        celery_app, "q-" + task_id, expires=past, ignore_result=True, **call
    )
    assert ours(expires=past, **call).properties["expiration"] == "0"
    assert received.properties["expiration"] == "0"


# --- (2) parsing a message Celery built ------------------------------------------------------

ENVELOPE_FIELDS = {f.name for f in dataclasses.fields(TaskEnvelope)} - {"message", "_v1_body"}


def _expected_fields(call: dict[str, Any], celery_headers: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": call["name"],
        "id": call["task_id"],
        "retries": call.get("retries", 0),
        "eta": call.get("eta"),
        "expires": call.get("expires"),
        "root_id": call.get("root_id") or call["task_id"],
        "parent_id": call.get("parent_id"),
        "group": call.get("group_id"),
        "group_index": call.get("group_index"),
        "time_limit": call.get("time_limit"),
        "soft_time_limit": call.get("soft_time_limit"),
        "shadow": call.get("shadow"),
        "origin": celery_headers["origin"],
        "ignore_result": call.get("ignore_result", False),
        "argsrepr": celery_headers["argsrepr"],
        "kwargsrepr": celery_headers["kwargsrepr"],
    }


@pytest.mark.parametrize("case", list(CALLS))
def test_parse_task_reads_every_field_of_a_celery_message(
    celery_app: celery.Celery, case: str
) -> None:
    call = CALLS[case]
    message = celery_wire_message(celery_app, **call)
    envelope = parse_task(message)
    expected = _expected_fields(call, message.headers)
    assert set(expected) == ENVELOPE_FIELDS  # a new TaskEnvelope field needs a check here
    assert {name: getattr(envelope, name) for name in expected} == expected
    assert envelope.headers is message.headers
    assert envelope.properties["correlation_id"] == call["task_id"]
    args, kwargs, embed = envelope.decode_body(JSON_ONLY)
    assert [args, kwargs, embed] == as_lists(theirs(celery_app, **call).body)


def test_parse_task_reads_celery_datetimes_as_aware(celery_app: celery.Celery) -> None:
    call = {"task_id": "tz-id", "name": "tests.tz", "args": [], "kwargs": {}}
    message = celery_wire_message(celery_app, **call, countdown=30, expires=90, now=NOW)
    envelope = parse_task(message)
    assert envelope.eta == NOW + dt.timedelta(seconds=30)
    assert envelope.expires == NOW + dt.timedelta(seconds=90)
    assert envelope.eta is not None and envelope.eta.tzinfo is not None


def test_decode_body_reads_kombu_typed_arguments(celery_app: celery.Celery) -> None:
    args = [
        NOW,
        Decimal("12.30"),
        uuid.UUID(int=7),
        b"utf8 bytes",
        b"\xff\x00",
        dt.date(2024, 2, 29),
    ]
    kwargs = {"at": dt.time(1, 2, 3), "nested": {"when": [NOW]}}
    call = {"task_id": "typed-id", "name": "tests.typed", "args": args, "kwargs": kwargs}
    decoded_args, decoded_kwargs, _ = parse_task(
        celery_wire_message(celery_app, **call)
    ).decode_body(JSON_ONLY)
    assert decoded_args == args
    assert [type(value) for value in decoded_args] == [type(value) for value in args]
    assert decoded_kwargs == kwargs


@pytest.mark.parametrize("method", ["zlib", "gzip", "bzip2", "lzma"])
def test_parse_task_reads_a_kombu_compressed_celery_message(
    celery_app: celery.Celery, method: str
) -> None:
    call = CALLS["full"]
    message = celery_wire_message(celery_app, compression=method, **call)
    envelope = parse_task(message)
    assert envelope.name == call["name"]
    args, kwargs, embed = envelope.decode_body(JSON_ONLY)
    assert [args, kwargs, embed] == as_lists(theirs(celery_app, **call).body)


def test_parse_task_reads_a_message_celery_published(celery_app: celery.Celery) -> None:
    task_id = str(uuid.uuid4())
    received = _published_by_celery(
        celery_app,
        "q-" + task_id,
        name="tests.sent",
        task_id=task_id,
        args=(NOW, 2),
        kwargs={"d": Decimal("1.5")},
        countdown=5,
        time_limit=30,
        soft_time_limit=20,
    )
    message = Message(
        received.body,
        dict(received.headers),
        dict(received.properties),
        received.content_type,
        received.content_encoding,
    )
    envelope = parse_task(message)
    assert (envelope.name, envelope.id, envelope.root_id) == ("tests.sent", task_id, task_id)
    assert (envelope.time_limit, envelope.soft_time_limit) == (30, 20)
    assert envelope.eta is not None and envelope.eta.tzinfo is not None
    assert envelope.properties["reply_to"] == celery_app.thread_oid
    args, kwargs, _ = envelope.decode_body(JSON_ONLY)
    assert (args, kwargs) == ([NOW, 2], {"d": Decimal("1.5")})


# --- (3) protocol v1 -------------------------------------------------------------------------


def test_parse_task_reads_a_protocol_1_message_built_by_celery(celery_app: celery.Celery) -> None:
    built = celery_app.amqp.as_task_v1(
        "v1-id",
        "tests.legacy",
        args=(1, "a"),
        kwargs={"k": NOW},
        eta=NOW,
        expires=NOW + dt.timedelta(minutes=1),
        group_id="v1-group",
        group_index=2,
        retries=1,
        time_limit=10,
        soft_time_limit=5,
        callbacks=[SIGNATURE],
        errbacks=[SIGNATURE],
        chord=SIGNATURE,
    )
    assert built.headers == {}
    content_type, content_encoding, body = kombu.serialization.dumps(built.body, serializer="json")
    message = Message(
        body.encode(content_encoding), {}, dict(built.properties), content_type, content_encoding
    )
    envelope = parse_task(message, accept=JSON_ONLY)
    assert (envelope.name, envelope.id, envelope.retries) == ("tests.legacy", "v1-id", 1)
    assert (envelope.eta, envelope.expires) == (NOW, NOW + dt.timedelta(minutes=1))
    assert (envelope.group, envelope.group_index) == ("v1-group", 2)
    assert (envelope.time_limit, envelope.soft_time_limit) == (10, 5)
    assert (envelope.root_id, envelope.parent_id) == (None, None)
    assert envelope.argsrepr == "[1, 'a']"
    args, kwargs, embed = envelope.decode_body(JSON_ONLY)
    assert (args, kwargs) == ([1, "a"], {"k": NOW})
    assert embed == {
        "callbacks": [SIGNATURE],
        "errbacks": [SIGNATURE],
        "chain": None,
        "chord": SIGNATURE,
    }


def test_parse_task_reads_a_hand_written_protocol_1_body() -> None:
    body = {
        "task": "tests.v1",
        "id": "v1-hand",
        "args": [3],
        "kwargs": {"x": 1},
        "retries": 2,
        "eta": "2024-03-04T05:06:07Z",
        "expires": None,
        "utc": True,
        "callbacks": None,
        "errbacks": None,
        "timelimit": [None, 8],
        "taskset": "old-group",
        "chord": None,
    }
    message = Message(serialization.json_dumps(body).encode("utf-8"), {}, {})
    envelope = parse_task(message)
    assert (envelope.name, envelope.id, envelope.retries) == ("tests.v1", "v1-hand", 2)
    assert envelope.eta == dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert envelope.expires is None
    assert envelope.group == "old-group"
    assert (envelope.time_limit, envelope.soft_time_limit) == (None, 8)
    assert envelope.decode_body(JSON_ONLY)[:2] == ([3], {"x": 1})


def test_protocol_1_body_in_a_refused_content_type() -> None:
    body = {"task": "tests.v1", "id": "v1-pickle", "args": [], "kwargs": {}}
    payload, content_type, content_encoding = serialization.dumps(body, "pickle")
    message = Message(payload, {}, {}, content_type, content_encoding)
    with pytest.raises(ContentDisallowed):
        parse_task(message, accept=JSON_ONLY)


def test_protocol_1_body_without_task_is_refused() -> None:
    message = Message(serialization.json_dumps({"id": "x", "args": []}).encode(), {}, {})
    with pytest.raises(DecodeError):
        parse_task(message)


# --- (4) errors ------------------------------------------------------------------------------


def _v2(headers: dict[str, Any], body: Any = ([], {}, {}), **properties: Any) -> Message:
    return Message(serialization.json_dumps(body).encode("utf-8"), headers, properties)


def test_id_falls_back_to_correlation_id() -> None:
    assert parse_task(_v2({"task": "tests.t"}, correlation_id="from-props")).id == "from-props"


@pytest.mark.parametrize(
    "headers",
    [
        {"task": "", "id": "x"},
        {"task": None, "id": "x"},
        {"task": "tests.t"},
        {"task": "t", "id": ""},
    ],
    ids=["empty-task", "null-task", "missing-id", "empty-id"],
)
def test_missing_task_or_id_is_a_decode_error(headers: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        parse_task(_v2(headers))


def test_protocol_2_body_without_task_header_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        parse_task(_v2({"id": "x"}))


@pytest.mark.parametrize("headers", [["task", "id"], None, "task", 5])
def test_non_dict_headers_are_a_decode_error(headers: Any) -> None:
    message = Message(b"[[], {}, {}]", headers, {})
    with pytest.raises(DecodeError):
        parse_task(message)


@pytest.mark.parametrize(
    "body",
    [[[], {}], [[], {}, {}, {}], {"args": []}, "text", None, ["not-a-list", {}, {}], [[], [], {}]],
    ids=["2-list", "4-list", "dict", "string", "null", "args-not-list", "kwargs-not-dict"],
)
def test_body_that_is_not_args_kwargs_embed_is_a_decode_error(body: Any) -> None:
    envelope = parse_task(_v2({"task": "tests.t", "id": "x"}, body))
    with pytest.raises(DecodeError):
        envelope.decode_body(JSON_ONLY)


def test_malformed_body_is_a_decode_error() -> None:
    envelope = parse_task(Message(b"[[1, 2], {", {"task": "tests.t", "id": "x"}, {}))
    with pytest.raises(DecodeError):
        envelope.decode_body(JSON_ONLY)


def test_decode_body_enforces_accept() -> None:
    message = build_task_message(name="tests.t", task_id="x", args=[1], serializer="pickle")
    envelope = parse_task(message)  # headers only: no body decoding yet
    assert envelope.name == "tests.t"
    with pytest.raises(ContentDisallowed):
        envelope.decode_body(JSON_ONLY)
    assert envelope.decode_body(serialization.normalize_accept(["pickle"]))[0] == [1]


@pytest.mark.parametrize("field", ["eta", "expires"])
@pytest.mark.parametrize("value", ["not-a-date", "2024-13-45T99:00:00", 12345])
def test_bad_eta_or_expires_is_a_decode_error(field: str, value: Any) -> None:
    with pytest.raises(DecodeError):
        parse_task(_v2({"task": "tests.t", "id": "x", field: value}))


@pytest.mark.parametrize("args", ["abc", 5, {"a": 1}, {1, 2}])
def test_args_not_a_list_is_a_type_error_like_celery(celery_app: celery.Celery, args: Any) -> None:
    with pytest.raises(TypeError):
        theirs(celery_app, task_id="x", name="tests.t", args=args, kwargs={})
    with pytest.raises(TypeError):
        build_task_message(name="tests.t", task_id="x", args=args)


@pytest.mark.parametrize("kwargs", [[("a", 1)], "abc", 5])
def test_kwargs_not_a_mapping_is_a_type_error_like_celery(
    celery_app: celery.Celery, kwargs: Any
) -> None:
    with pytest.raises(TypeError):
        theirs(celery_app, task_id="x", name="tests.t", args=(), kwargs=kwargs)
    with pytest.raises(TypeError):
        build_task_message(name="tests.t", task_id="x", kwargs=kwargs)


def test_unserializable_args_raise_encode_error_at_build_time() -> None:
    with pytest.raises(EncodeError):
        build_task_message(name="tests.t", task_id="x", args=[object()])
    with pytest.raises(EncodeError):
        build_task_message(name="tests.t", task_id="x", kwargs={"k": object()})


def test_unknown_serializer_raises_encode_error_at_build_time() -> None:
    with pytest.raises(EncodeError):
        build_task_message(name="tests.t", task_id="x", serializer="nope")


def test_compression_header_round_trip() -> None:
    args = [{"blob": "x" * 2000}, NOW]
    message = build_task_message(name="tests.z", task_id="z", args=args, compression="zlib")
    assert message.headers["compression"] == "application/x-gzip"
    raw = zlib.decompress(message.body)  # the body really is compressed
    assert len(message.body) < len(raw)
    # kombu (a Celery worker) can read it ...
    kombu_body = kombu.serialization.loads(
        kombu.compression.decompress(message.body, message.headers["compression"]),
        message.content_type,
        message.content_encoding,
    )
    assert kombu_body[0] == args
    # ... and so can celeriac.
    envelope = parse_task(message)
    assert envelope.decode_body(JSON_ONLY)[0] == args


def test_corrupt_compressed_body_is_a_decode_error() -> None:
    message = Message(
        b"not zlib", {"task": "tests.t", "id": "x", "compression": "application/x-gzip"}
    )
    with pytest.raises(DecodeError):
        parse_task(message).decode_body(JSON_ONLY)


def test_unknown_compression_header_is_a_decode_error() -> None:
    message = Message(b"[[], {}, {}]", {"task": "tests.t", "id": "x", "compression": "x/unknown"})
    with pytest.raises(DecodeError):
        parse_task(message).decode_body(JSON_ONLY)


# --- (5) saferepr ----------------------------------------------------------------------------


class ReprRaises:
    """Picklable, and its repr blows up."""

    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


class HugeRepr:
    def __repr__(self) -> str:
        return "H" * 50_000


def test_saferepr_never_raises() -> None:
    text = saferepr(ReprRaises())
    assert isinstance(text, str)
    assert "ReprRaises" in text
    assert isinstance(saferepr([1, ReprRaises(), {"k": ReprRaises()}]), str)


def test_saferepr_handles_recursive_containers() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    assert saferepr(loop).startswith("[1, ")


@pytest.mark.parametrize("maxsize", [1024, 100, 10])
@pytest.mark.parametrize(
    "value",
    ["s" * 5000, list(range(5000)), {str(i): i for i in range(500)}, HugeRepr(), b"b" * 5000],
    ids=["str", "list", "dict", "huge-repr", "bytes"],
)
def test_saferepr_truncates_to_maxsize(value: Any, maxsize: int) -> None:
    text = saferepr(value, maxsize)
    # As in Celery, the last piece may run a little past maxsize before the cut is marked.
    assert len(text) <= maxsize + 16
    assert "..." in text


def test_saferepr_leaves_short_values_alone() -> None:
    assert saferepr((1, "a")) == "(1, 'a')"
    assert saferepr({"k": [1, 2]}, 1024) == "{'k': [1, 2]}"


def test_message_goes_out_when_an_argument_repr_raises() -> None:
    message = build_task_message(
        name="tests.t", task_id="x", args=[ReprRaises()], serializer="pickle"
    )
    assert isinstance(message.headers["argsrepr"], str)
    assert "ReprRaises" in message.headers["argsrepr"]


def test_argsrepr_header_respects_repr_maxsize() -> None:
    message = build_task_message(
        name="tests.t", task_id="x", args=["y" * 5000], kwargs={"k": "z" * 5000}, repr_maxsize=64
    )
    assert len(message.headers["argsrepr"]) <= 64 + 16
    assert len(message.headers["kwargsrepr"]) <= 64 + 16
