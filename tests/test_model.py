"""The model's JSON forms: the full form for people, the compact form for the wire."""

from __future__ import annotations

import json

import pytest

from inspector import model
from inspector.model import FRAME_TABLE_KEY, Frame, ModelError, ProcessInfo, Snapshot, TaskInfo

PARK = (Frame("/srv/app.py", 10, "outer", "await middle()"), Frame("/srv/app.py", 20, "middle"))


def parked_snapshot(count: int) -> Snapshot:
    tasks = tuple(
        TaskInfo(id=i, name=f"Task-{i}", state="pending", coro="outer", stack=PARK)
        for i in range(count)
    )
    return Snapshot(process=ProcessInfo(pid=1), taken_at=1.0, tasks=tasks)


def test_compact_form_writes_each_frame_once_and_reads_back_equal() -> None:
    snapshot = parked_snapshot(100)
    data = model.to_json_dict(snapshot, compact=True)
    assert len(data[FRAME_TABLE_KEY]) == 2
    assert data["tasks"][7]["stack"] == [0, 1]
    decoded = Snapshot.from_json_dict(json.loads(json.dumps(data)))
    assert decoded == snapshot
    assert decoded.tasks[0].stack[0] is decoded.tasks[99].stack[0]  # shared, not copied


def test_compact_form_leaves_out_defaults_and_full_form_keeps_them() -> None:
    snapshot = parked_snapshot(1)
    compact = model.to_json_dict(snapshot, compact=True)
    full = model.to_json_dict(snapshot)
    assert "waiting_on" not in compact["tasks"][0]
    assert full["tasks"][0]["waiting_on"] is None
    assert FRAME_TABLE_KEY not in full
    assert len(json.dumps(compact)) < len(json.dumps(full))


@pytest.mark.parametrize("reference", [2, -1, 10**12])
def test_a_frame_reference_outside_the_table_is_refused(reference: int) -> None:
    data = model.to_json_dict(parked_snapshot(1), compact=True)
    data["tasks"][0]["stack"][0] = reference
    with pytest.raises(ModelError, match=r"\$\.tasks\[0\]\.stack\[0\]: frame .* not in the frame"):
        Snapshot.from_json_dict(data)


def test_a_frame_reference_without_a_table_is_refused() -> None:
    data = model.to_json_dict(parked_snapshot(1))
    data["tasks"][0]["stack"][0] = 0
    with pytest.raises(ModelError, match="not in the frame table"):
        Snapshot.from_json_dict(data)
