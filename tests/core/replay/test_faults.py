"""The fault grammar: every kind, targets and points, and one clear error per mistake."""

from __future__ import annotations

import pytest

from wstape.core.errors import ConfigError
from wstape.core.replay.faults import FaultKind, Point, check_aims, parse_fault


@pytest.mark.parametrize(
    ("spec", "kind", "fields"),
    [
        ("refuse@status=503,times=2", FaultKind.REFUSE, {"status": 503, "times": 2}),
        ("refuse", FaultKind.REFUSE, {"status": 503, "times": None}),
        ("stall@times=1", FaultKind.STALL, {"times": 1, "seconds": None}),
        ("stall@for=5s", FaultKind.STALL, {"seconds": 5.0}),
        ("drop@conn=1,after=3", FaultKind.DROP, {"conn": 1, "point": Point(server_messages=3)}),
        ("close@code=1012,reason=restart,after=2s", FaultKind.CLOSE,
         {"code": 1012, "reason": "restart", "point": Point(seconds=2.0)}),
        ("mute-heartbeats@after=10s", FaultKind.MUTE_HEARTBEATS, {"point": Point(seconds=10.0)}),
        ("blackhole@path=/chat,after-client=2", FaultKind.BLACKHOLE,
         {"path": "/chat", "point": Point(client_messages=2)}),
        ("delay@ms=200", FaultKind.DELAY, {"ms": 200.0}),
        ("jitter@ms=100,seed=7", FaultKind.JITTER, {"ms": 100.0, "seed": 7}),
        ("throttle@rate=2048", FaultKind.THROTTLE, {"rate": 2048}),
        ("fragment@size=16", FaultKind.FRAGMENT, {"size": 16}),
        ("drop@after=250ms", FaultKind.DROP, {"point": Point(seconds=0.25)}),
    ],
)  # fmt: skip
def test_specs(spec: str, kind: FaultKind, fields: dict[str, object]) -> None:
    fault = parse_fault(spec)
    assert fault.kind is kind and fault.spec == spec
    for name, value in fields.items():
        assert getattr(fault, name) == value, name


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("explode", "unknown fault 'explode'"),
        ("drop@after", "is not key=value"),
        ("drop@after=soon", "is neither a count of server messages (e.g. 3) nor a duration"),
        ("drop@after=-1", "is neither a count"),  # (QA: these said "not a duration")
        ("drop@after=1.5", "is neither a count"),
        ("drop@status=503", "drop takes"),
        ("refuse@after=3", "refuse takes"),
        ("close@code=1005", "cannot go on the wire"),
        ("close@code=999", "not in 1000..4999"),
        ("refuse@status=101", "a refusal is a final status"),
        ("delay", "needs ms=N"),
        ("throttle@rate=0", "needs rate=N"),
        ("drop@conn=1,conn=2", "given twice"),
        ("drop@after=1,after-client=1", "exclude each other"),
        ("close@reason=" + "x" * 124, "at most 123 bytes"),
        ("drop@", "nothing after @"),
        ("drop@ ", "nothing after @"),
        # QA: each of these was taken (a comma or a space too many)
        ("drop@after=1,", "an empty item between commas"),
        ("drop@,after=1", "an empty item between commas"),
        ("drop @after=1", "no spaces around @"),
        ("drop@after= 1", "no spaces around = or ,"),
        # QA: a status with no body to refuse with, a code servers do not send
        ("refuse@status=100", "a refusal is a final status with a body"),
        ("refuse@status=204", "not 204 or 304"),
        ("close@code=1010", "1010 is sent by clients only"),
    ],
)
def test_mistakes_are_one_line(spec: str, says: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_fault(spec)
    assert says in str(e.value) and e.value.option == "faults"
    assert "\n" not in str(e.value)


RECORDED = [(1, "/chat"), (2, "/feed"), (3, "/chat")]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("drop@conn=99", "the cassette has no connection 99 (it has 1, 2, 3)"),
        ("drop@path=/nope*", "path=/nope* matches none of the recorded paths (/chat, /feed)"),
        # (QA: it listed every recorded path as connection 2's)
        ("drop@conn=2,path=/chat", "does not match connection 2's path (/feed);"),
    ],
)
def test_a_fault_aimed_at_no_recorded_connection_is_refused(spec: str, says: str) -> None:
    with pytest.raises(ConfigError) as e:
        check_aims([parse_fault(spec)], RECORDED)
    assert says in str(e.value) and "would never happen" in str(e.value)
    assert e.value.option == "faults" and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "spec", ["drop", "drop@conn=3", "drop@path=/ch*", "drop@conn=3,path=/chat"]
)
def test_a_fault_aimed_at_a_recorded_connection_is_taken(spec: str) -> None:
    check_aims([parse_fault(spec)], RECORDED)


def test_aims_at() -> None:
    assert parse_fault("drop@conn=2").aims_at(2, "/x")
    assert not parse_fault("drop@conn=2").aims_at(1, "/x")
    assert parse_fault("drop@path=/chat*").aims_at(1, "/chatroom")
    assert parse_fault("drop").aims_at(None, "/anything")
