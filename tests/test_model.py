"""The model's JSON forms: the full form for people, the compact form for the wire."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from inspector import codec
from inspector.codec import COUNT_KEY, FRAME_TABLE_KEY, WAIT_TABLE_KEY
from inspector.model import (
    Frame,
    ModelError,
    ProcessInfo,
    RequestInfo,
    Snapshot,
    TaskInfo,
    WaitInfo,
)

PARK = (Frame("/srv/app.py", 10, "outer", "await middle()"), Frame("/srv/app.py", 20, "middle"))
EVENT = WaitInfo(kind="event", description="Event not set", object_id=7, waiters=3, is_set=False)


def parked_snapshot(count: int) -> Snapshot:
    tasks = tuple(
        TaskInfo(id=i, name=f"Task-{i}", state="pending", coro="outer", stack=PARK)
        for i in range(count)
    )
    return Snapshot(process=ProcessInfo(pid=1), taken_at=1.0, tasks=tasks)


def mixed_snapshot() -> Snapshot:
    """Tasks and requests whose fields are at their default in some objects and not others."""
    tasks = tuple(
        TaskInfo(
            id=i,
            name=f"Task-{i}",
            state="running" if i == 3 else "pending",
            coro="outer",
            stack=PARK[: i % 3],
            waiting_on=EVENT if i % 2 else None,
            age=None if i % 4 == 0 else i / 10,
            created_at=PARK[1] if i == 5 else None,
            request_id=i if i > 6 else None,
        )
        for i in range(12)
    )
    requests = tuple(
        RequestInfo(
            id=i,
            method="GET",
            path=f"/items/{i}",
            started_at=100.0 + i,
            phase="handler" if i else "done",
            status=200 if i % 2 else None,
            thread_ids=(i, i + 1) if i == 2 else (),
        )
        for i in range(5)
    )
    return Snapshot(
        process=ProcessInfo(pid=1),
        taken_at=1.0,
        tasks=tasks,
        requests=requests,
        recent_requests=requests[:2],
    )


def wire(snapshot: Snapshot) -> dict[str, Any]:
    data = codec.to_json_dict(snapshot, compact=True)
    return json.loads(json.dumps(data))  # type: ignore[no-any-return]


def test_compact_form_writes_each_frame_once_and_reads_back_equal() -> None:
    snapshot = parked_snapshot(100)
    data = wire(snapshot)
    assert data[FRAME_TABLE_KEY][COUNT_KEY] == 2
    assert data["tasks"]["stack"][7] == [0, 1]
    decoded = codec.from_json_dict(Snapshot, data)
    assert decoded == snapshot
    assert decoded.tasks[0].stack[0] is decoded.tasks[99].stack[0]  # shared, not copied


def test_compact_form_leaves_out_defaults_and_full_form_keeps_them() -> None:
    snapshot = parked_snapshot(1)
    compact = codec.to_json_dict(snapshot, compact=True)
    full = codec.to_json_dict(snapshot)
    assert "waiting_on" not in compact["tasks"][0]
    assert full["tasks"][0]["waiting_on"] is None
    assert FRAME_TABLE_KEY not in full
    assert len(json.dumps(compact)) < len(json.dumps(full))


def test_lists_of_objects_are_written_by_columns_without_all_default_columns() -> None:
    data = wire(parked_snapshot(3))
    assert data["tasks"][COUNT_KEY] == 3
    assert data["tasks"]["name"] == ["Task-0", "Task-1", "Task-2"]
    assert "waiting_on" not in data["tasks"] and "age" not in data["tasks"]
    assert isinstance(codec.to_json_dict(parked_snapshot(3))["tasks"], list)  # full form: rows


def test_columns_read_back_equal_to_the_objects_and_to_the_full_form() -> None:
    snapshot = mixed_snapshot()
    data = wire(snapshot)
    assert data["tasks"]["waiting_on"][:2] == [None, 0]
    assert len(data[WAIT_TABLE_KEY]) == 1  # one wait: a row, not columns
    decoded = codec.from_json_dict(Snapshot, data)
    assert decoded == snapshot
    assert decoded == codec.from_json_dict(
        Snapshot, json.loads(json.dumps(codec.to_json_dict(snapshot)))
    )
    assert decoded.tasks[1].waiting_on is decoded.tasks[3].waiting_on
    assert decoded.tasks[5].created_at is decoded.tasks[5].stack[1]


def test_many_tasks_round_trip_with_shared_stacks() -> None:
    snapshot = parked_snapshot(2000)
    decoded = codec.from_json_dict(Snapshot, wire(snapshot))
    assert decoded == snapshot
    assert decoded.tasks[0].stack is decoded.tasks[1999].stack


def test_an_unknown_column_is_ignored() -> None:
    data = wire(parked_snapshot(3))
    data["tasks"]["priority"] = [1, 2, 3]
    data["tasks"]["notes"] = {"any": "shape"}
    assert codec.from_json_dict(Snapshot, data) == parked_snapshot(3)


def refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError) as caught:
        codec.from_json_dict(Snapshot, data)
    assert str(caught.value) == message


def test_a_wrong_type_in_a_column_is_refused_with_its_index() -> None:
    data = wire(parked_snapshot(20))
    data["tasks"]["name"][17] = 5
    refused(data, "$.tasks.name[17]: expected str, got 5")


def test_a_bool_in_an_int_column_is_refused() -> None:
    data = wire(parked_snapshot(3))
    data["tasks"]["id"][1] = True
    refused(data, "$.tasks.id[1]: expected an integer, got True")


def test_an_int_in_a_float_column_is_taken_as_a_float() -> None:
    data = wire(mixed_snapshot())
    data["requests"]["started_at"][0] = 100
    decoded = codec.from_json_dict(Snapshot, data)
    assert decoded.requests[0].started_at == 100.0
    assert type(decoded.requests[0].started_at) is float


def test_a_value_outside_a_literal_column_is_refused() -> None:
    data = wire(parked_snapshot(3))
    data["tasks"]["state"][2] = "asleep"
    with pytest.raises(ModelError, match=r"^\$\.tasks\.state\[2\]: 'asleep' is not one of"):
        codec.from_json_dict(Snapshot, data)


@pytest.mark.parametrize(("field", "values", "message"), [
    ("name", ["Task-0", "Task-1"], "$.tasks.name: expected 3 values, got 2"),
    ("name", "Task-0", "$.tasks.name: expected a list, got str"),
    ("stack", [[0, 1], [0, 2], [0, 1]], "$.tasks.stack[1][1]: frame 2 is not in the frame table"),
    ("stack", [[0, 1], [0, -1], [0, 1]], "$.tasks.stack[1][1]: frame -1 is not in the frame table"),
    ("stack", [[0, 1], [0, 1.0], [0, 1]], "$.tasks.stack[1][1]: expected an object, got float"),
])  # fmt: skip
def test_a_bad_column_is_refused_with_its_path(field: str, values: Any, message: str) -> None:
    data = wire(parked_snapshot(3))
    data["tasks"][field] = values
    refused(data, message)


def test_a_wait_reference_outside_its_table_is_refused() -> None:
    data = wire(mixed_snapshot())
    data["tasks"]["waiting_on"][3] = 1
    refused(data, "$.tasks.waiting_on[3]: wait 1 is not in the wait table")


def test_a_missing_required_column_is_refused() -> None:
    data = wire(parked_snapshot(3))
    del data["tasks"]["coro"]
    refused(data, "$.tasks: missing field 'coro'")


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (-1, "$.tasks.$n: expected a count of objects, got -1"),
        ("3", "$.tasks.$n: expected a count of objects, got '3'"),
        (True, "$.tasks.$n: expected a count of objects, got True"),
        (None, "$.tasks.$n: expected a count of objects, got None"),
        (10**12, "$.tasks: no column holds 1000000000000 values"),
        (4, "$.tasks: no column holds 4 values"),
    ],
)
def test_a_bad_count_is_refused(count: object, message: str) -> None:
    data = wire(parked_snapshot(3))
    data["tasks"][COUNT_KEY] = count
    if count is None:
        del data["tasks"][COUNT_KEY]
    refused(data, message)


def test_a_huge_count_backed_only_by_defaults_allocates_nothing() -> None:
    data = wire(parked_snapshot(3))
    data["tasks"] = {COUNT_KEY: 10**12}
    refused(data, "$.tasks: no column holds 1000000000000 values")


@pytest.mark.parametrize("reference", [2, -1, 10**12])
def test_a_frame_reference_outside_the_table_is_refused(reference: int) -> None:
    data = codec.to_json_dict(parked_snapshot(1), compact=True)
    data["tasks"][0]["stack"][0] = reference
    with pytest.raises(ModelError, match=r"\$\.tasks\[0\]\.stack\[0\]: frame .* not in the frame"):
        codec.from_json_dict(Snapshot, data)


def test_a_frame_reference_without_a_table_is_refused() -> None:
    data = codec.to_json_dict(parked_snapshot(1))
    data["tasks"][0]["stack"][0] = 0
    with pytest.raises(ModelError, match="not in the frame table"):
        codec.from_json_dict(Snapshot, data)


def test_assemble_builds_what_the_constructor_builds_and_refuses_missing_fields() -> None:
    built = codec.assemble(TaskInfo, id=1, name="Task-1", state="pending", coro="main", stack=PARK)
    assert built == TaskInfo(id=1, name="Task-1", state="pending", coro="main", stack=PARK)
    assert built.waiting_on is None and built.request_id is None  # defaults filled in
    with pytest.raises(TypeError, match="missing"):
        codec.assemble(TaskInfo, id=1)


# --- numbers out of range ---------------------------------------------------------------------
# JSON reads 1e400 as inf; a corrupt or hostile peer may send any number at all. Every one that
# no agent can send is refused where it is decoded, naming the field, in both forms.


def full_form(snapshot: Snapshot) -> dict[str, Any]:
    return json.loads(json.dumps(codec.to_json_dict(snapshot)))  # type: ignore[no-any-return]


TIME = "expected a time between 1970 and 3000"
FINITE = "expected a finite number within ±1e15"
INT64 = "expected an integer of 64 bits"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (float("inf"), f"{TIME}, got inf"),
        (float("-inf"), f"{TIME}, got -inf"),
        (float("nan"), f"{TIME}, got nan"),
        (-1e18, f"{TIME}, got -1e+18"),
        (-1.0, f"{TIME}, got -1.0"),
        (1e12, f"{TIME}, got 1000000000000.0"),
        (10**400, f"{TIME}, got an integer of 1329 bits"),
        ("1.0", "expected a number, got '1.0'"),
    ],
)
@pytest.mark.parametrize("form", [full_form, wire])
def test_a_wall_clock_time_out_of_range_is_refused(
    form: Callable[[Snapshot], dict[str, Any]], value: object, words: str
) -> None:
    data = form(mixed_snapshot())
    data["taken_at"] = value
    refused(data, f"$.taken_at: {words}")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (float("inf"), f"{FINITE}, got inf"),
        (float("nan"), f"{FINITE}, got nan"),
        (-1e16, f"{FINITE}, got -1e+16"),
        (10**400, f"{FINITE}, got an integer of 1329 bits"),
        (2**1100, f"{FINITE}, got an integer of 1101 bits"),  # float() of it would overflow
    ],
)
def test_a_duration_out_of_range_is_refused_in_a_column_and_in_a_row(
    value: object, words: str
) -> None:
    columns = wire(mixed_snapshot())
    columns["tasks"]["age"][5] = value
    refused(columns, f"$.tasks.age[5]: {words}")
    rows = full_form(mixed_snapshot())
    rows["tasks"][5]["age"] = value
    refused(rows, f"$.tasks[5].age: {words}")


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        (("requests", "started_at", 2), float("inf"), f"{TIME}, got inf"),
        (("requests", "started_at", 2), 2e10 * 2, f"{TIME}, got 40000000000.0"),
        (("requests", "bytes_sent", 1), 2**64, f"{INT64}, got 18446744073709551616"),
        (("requests", "bytes_sent", 1), -(2**63) - 1, f"{INT64}, got -9223372036854775809"),
        (("requests", "status", 1), 10**30, f"{INT64}, got 1000000000000000000000000000000"),
    ],
)
def test_a_number_out_of_range_in_a_column_is_refused_with_its_index(
    path: tuple[str, str, int], value: object, words: str
) -> None:
    data = wire(mixed_snapshot())
    key, column, index = path
    data[key].setdefault(column, [0] * data[key][COUNT_KEY])[index] = value  # all 0: left out
    refused(data, f"$.{key}.{column}[{index}]: {words}")


def test_numbers_out_of_range_anywhere_are_refused() -> None:
    cases: list[tuple[str, object, str]] = [
        ("requests_undetailed", 2**64, f"$.requests_undetailed: {INT64}, got 18446744073709551616"),
        ("loop", {"implementation": "asyncio", "lag": 1e400}, f"$.loop.lag: {FINITE}, got inf"),
        (
            "loop",
            {"implementation": "asyncio", "lag": 0.0, "lag_series": [[1.0, 0.1], [2.0, -1e400]]},
            f"$.loop.lag_series[1][1]: {FINITE}, got -inf",
        ),
        ("process", {"pid": 2**70}, f"$.process.pid: {INT64}, got 1180591620717411303424"),
        (
            "process",
            {"pid": 1, "started_at": float("nan")},
            f"$.process.started_at: {TIME}, got nan",
        ),
    ]
    for key, value, message in cases:
        data = full_form(mixed_snapshot())
        data[key] = value
        refused(data, message)


def test_an_integer_too_long_to_print_is_refused_in_one_line() -> None:
    data = full_form(mixed_snapshot())
    data["requests_undetailed"] = 10**5000  # repr() of it raises past 4300 digits
    refused(data, f"$.requests_undetailed: {INT64}, got an integer of 16610 bits")


def test_numbers_at_the_ends_of_their_ranges_are_taken() -> None:
    data = wire(mixed_snapshot())
    data["taken_at"] = codec.MAX_WALL_CLOCK
    data["requests"]["started_at"] = [0.0, 0, 1.7e9, codec.MAX_WALL_CLOCK, 5]
    data["requests"]["bytes_sent"] = [codec.MAX_INT, 0, codec.MIN_INT, 1, 2]
    data["tasks"]["age"][1:4] = [codec.MAX_MAGNITUDE, -codec.MAX_MAGNITUDE, -0.5]
    snapshot = codec.from_json_dict(Snapshot, data)
    assert snapshot.taken_at == codec.MAX_WALL_CLOCK
    assert [r.started_at for r in snapshot.requests] == [0.0, 0.0, 1.7e9, 3.250368e10, 5.0]
    assert snapshot.requests[2].bytes_sent == codec.MIN_INT
    assert [t.age for t in snapshot.tasks[1:4]] == [1e15, -1e15, -0.5]  # a clock stepped back


def test_ids_are_opaque_and_taken_at_any_size() -> None:
    """Ids are only compared and printed; the columns of 10,000 task ids are not scanned."""
    data = wire(mixed_snapshot())
    data["tasks"]["id"][2] = 2**80
    data["tasks"]["request_id"][8] = -1
    snapshot = codec.from_json_dict(Snapshot, data)
    assert snapshot.tasks[2].id == 2**80 and snapshot.tasks[8].request_id == -1
