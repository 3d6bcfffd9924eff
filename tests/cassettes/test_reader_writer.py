from __future__ import annotations

import os
import tracemalloc
from dataclasses import replace
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import hostile
from tests.helpers.records import records
from wstape.cassettes import (
    CassetteError,
    CassetteExists,
    CassetteReader,
    CassetteWriteError,
    CassetteWriter,
    DuplicateConnection,
    NewerCassette,
    TruncatedCassette,
    UnreadableRecord,
    WriteMode,
    read_cassette,
)
from wstape.cassettes import reader as reader_module
from wstape.cassettes import writer as writer_module
from wstape.cassettes.schema import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_OFFSET,
    describe_value,
    header_to_dict,
    record_to_dict,
)
from wstape.core.errors import ConfigError
from wstape.core.model import Close, Header, Message, Note, Opcode, Open, Record, Side

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def sample_open(conn: int = 1) -> Open:
    return Open(
        conn=conn,
        started_at=1_790_000_000.5,
        method="GET",
        scheme="ws",
        host="127.0.0.1",
        port=9000,
        target="/chat?room=1",
        http_version="HTTP/1.1",
        request_headers=((b"Host", b"127.0.0.1:9000"), (b"Upgrade", b"websocket")),
        status=101,
        response_headers=((b"Upgrade", b"websocket"),),
    )


def write(path: Path, recs: list[Record]) -> None:
    with CassetteWriter(path, mode=WriteMode.OVERWRITE, started_at=1.0) as w:
        for r in recs:
            w.write(r)


def write_v1(path: Path, recs: list[Record], started_at: float = 1.0) -> None:
    """A format-version-1 cassette as wstape 0.1 wrote it: maps only, no end record."""
    with open(path, "wb") as f:
        f.write(msgpack.packb(header_to_dict(Header(1, "wstape 0.1.0", started_at))))
        for r in recs:
            f.write(msgpack.packb(record_to_dict(r), use_bin_type=True))


@given(recs=st.lists(records, max_size=20))
@SETTINGS
def test_round_trip(tmp_path: Path, recs: list[Record]) -> None:
    path = tmp_path / "c.msgpack"
    write(path, recs)
    reader = CassetteReader(path, allow_reused_ids=True)  # random ids may repeat
    assert list(reader) == recs
    assert reader.header.started_at == 1.0


@given(data=st.binary(max_size=400))
@SETTINGS
def test_random_bytes_only_raise_cassette_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "r.msgpack"
    path.write_bytes(data)
    try:
        reader = CassetteReader(path)
        list(reader)
    except CassetteError:
        pass


@given(recs=st.lists(records, min_size=1, max_size=8), data=st.data())
@SETTINGS
def test_truncated_or_corrupted_cassette_only_raises_cassette_error(
    tmp_path: Path, recs: list[Record], data: st.DataObject
) -> None:
    path = tmp_path / "t.msgpack"
    write(path, recs)
    raw = bytearray(path.read_bytes())
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(min_value=0, max_value=len(raw) - 1))]
    else:
        i = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw[i] = data.draw(st.integers(min_value=0, max_value=255))
    path.write_bytes(bytes(raw))
    try:
        list(CassetteReader(path))
    except CassetteError:
        pass


def test_truncated_tail_is_reported_with_its_offset(tmp_path: Path) -> None:
    path = tmp_path / "c.msgpack"
    msgs: list[Record] = [
        Message(1, float(i), Side.CLIENT, Opcode.TEXT, b"x" * 100) for i in range(3)
    ]
    write(path, [sample_open(), *msgs])
    full = path.read_bytes()
    end = CassetteReader(path).end_summary()
    assert end is not None
    full = full[: -end.size]  # (inside the last message, not the end record)
    path.write_bytes(full[:-10])
    with pytest.raises(TruncatedCassette) as info:
        list(CassetteReader(path))
    assert info.value.record == 4
    assert info.value.offset is not None and 0 < info.value.offset < len(full) - 10
    assert str(path) in str(info.value) and "record 4" in str(info.value)

    reader = CassetteReader(path, allow_truncated=True)
    got = list(reader)
    assert got == [sample_open(), *msgs[:2]]
    assert reader.truncated_at == info.value.offset


def test_a_damaged_length_before_the_end_record_is_corruption_not_truncation(
    tmp_path: Path,
) -> None:
    """A record whose length runs past the file's end, in a file that ends with a whole
    end record, was damaged, not cut: calling it truncated sends the user to repair,
    which would drop every record after it."""
    path = tmp_path / "c.msgpack"
    msgs: list[Record] = [
        Message(1, float(i), Side.CLIENT, Opcode.TEXT, bytes([65 + i]) * 100) for i in range(3)
    ]
    write(path, [sample_open(), *msgs])
    data = bytearray(path.read_bytes())
    at = data.index(b"\xc4\x64" + b"B" * 100)  # the second message's bin 8 marker
    data[at] = 0xC5  # bin 16: its length now reads 0x6442, past the end of the file
    path.write_bytes(bytes(data))
    for allow in (False, True):
        with pytest.raises(CassetteError) as info:
            list(CassetteReader(path, allow_truncated=allow))
        assert not isinstance(info.value, TruncatedCassette)
        assert info.value.record == 3
        assert "runs past the end record" in str(info.value)
        assert "not a cut file" in str(info.value)


def test_newer_version_says_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "new.msgpack"
    path.write_bytes(
        msgpack.packb(
            {
                "type": "header",
                "format": FORMAT_NAME,
                "version": 99,
                "creator": "x",
                "started_at": 0.0,
            }
        )
    )
    with pytest.raises(NewerCassette, match="upgrade wstape"):
        CassetteReader(path)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "empty file"),
        (b"hello world, not msgpack\n", "not a wstape cassette"),
        (msgpack.packb({"type": "header", "format": "other"}), "no wstape header"),
        (msgpack.packb([1, 2, 3]), "no wstape header"),
    ],
)
def test_not_a_cassette(tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "x.msgpack"
    path.write_bytes(content)
    with pytest.raises(CassetteError, match=needle):
        CassetteReader(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match="no such file"):
        CassetteReader(tmp_path / "nope.msgpack")


def test_schema_error_names_record_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.msgpack"
    write_v1(path, [sample_open()])  # (a v1 message map: v2 arrays in tests/cassettes/test_v2.py)
    with open(path, "ab") as f:
        f.write(
            msgpack.packb(
                {
                    "type": "message",
                    "conn": 1,
                    "t": "soon",
                    "from": "client",
                    "opcode": "text",
                    "data": b"",
                }
            )
        )
    with pytest.raises(CassetteError, match=r"record 2, byte \d+: field 't' must be a number"):
        list(CassetteReader(path))


@pytest.mark.parametrize(
    ("record", "needle"),
    [
        (
            {
                "type": "message",
                "conn": 1,
                "t": float("nan"),
                "from": "client",
                "opcode": "text",
                "data": b"",
            },
            "field 't' must be a number",
        ),
        (
            {
                "type": "close",
                "conn": 1,
                "t": float("inf"),
                "by": None,
                "code": None,
                "reason": "",
                "on_wire": False,
            },
            "field 't' must be a number",
        ),
        (
            {
                "type": "close",
                "conn": 1,
                "t": 1.0,
                "by": "client",
                "code": 70000,
                "reason": "",
                "on_wire": True,
            },
            "field 'code' must be an integer from 0 to 65535",
        ),
        (
            {
                "type": "close",
                "conn": 1,
                "t": 1.0,
                "by": "client",
                "code": -1,
                "reason": "",
                "on_wire": True,
            },
            "field 'code' must be an integer from 0 to 65535",
        ),
        (
            {**record_to_dict(sample_open()), "started_at": 1e20},
            "field 'started_at' must be a date",
        ),
    ],
)
def test_values_readers_cannot_use_are_schema_errors(
    tmp_path: Path, record: dict[str, object], needle: str
) -> None:
    # A close code that is no 16-bit integer, or a time that is NaN or past year 9999,
    # made check, stats, export and view end in a traceback instead of exit code 3.
    path = tmp_path / "bad.msgpack"
    write_v1(path, [sample_open()])
    with open(path, "ab") as f:
        f.write(msgpack.packb(record))
    with pytest.raises(CassetteError, match=rf"record 2, byte \d+: {needle}"):
        list(CassetteReader(path))


def test_unknown_ext_type_rejected(tmp_path: Path) -> None:
    path = tmp_path / "ext.msgpack"
    write(path, [])
    with open(path, "ab") as f:
        f.write(msgpack.packb(msgpack.ExtType(42, b"boom")))
    with pytest.raises(CassetteError, match="extension type 42"):
        list(CassetteReader(path))


def test_append_continues_conn_ids_and_refuses_truncated(tmp_path: Path) -> None:
    path = tmp_path / "a.msgpack"
    write(path, [sample_open(1), sample_open(7)])
    with CassetteWriter(path, mode=WriteMode.APPEND) as w:
        assert w.new_conn_id() == 8
        w.write(Close(8, 0.0, Side.SERVER, 1000))
    _, recs = read_cassette(path)
    assert recs[-1] == Close(8, 0.0, Side.SERVER, 1000)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(TruncatedCassette):
        CassetteWriter(path, mode=WriteMode.APPEND)


def test_refuses_to_overwrite_without_flag(tmp_path: Path) -> None:
    path = tmp_path / "a.msgpack"
    write(path, [sample_open()])
    with pytest.raises(CassetteExists, match=r"already exists$"):
        CassetteWriter(path)
    assert read_cassette(path)[1] == [sample_open()]


def test_write_mode_from_two_flags() -> None:
    assert WriteMode.from_flags(False, False) is WriteMode.CREATE
    assert WriteMode.from_flags(True, False) is WriteMode.APPEND
    assert WriteMode.from_flags(False, True) is WriteMode.OVERWRITE
    with pytest.raises(ConfigError):
        WriteMode.from_flags(True, True)


def test_append_refuses_newer_cassette(tmp_path: Path) -> None:
    path = tmp_path / "new.msgpack"
    path.write_bytes(
        msgpack.packb(
            {
                "type": "header",
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION + 1,
                "creator": "x",
                "started_at": 0.0,
            }
        )
    )
    with pytest.raises(NewerCassette):
        CassetteWriter(path, mode=WriteMode.APPEND)


def test_write_failure_is_loud(tmp_path: Path) -> None:
    path = tmp_path / "gone.msgpack"
    w = CassetteWriter(path, live=True)  # a live recording checks before every record
    os.unlink(path)
    with pytest.raises(CassetteWriteError, match="removed"):
        w.write(sample_open())
    with pytest.raises(CassetteWriteError):  # stays failed
        w.write(sample_open())
    w.close()


def test_a_removed_file_is_noticed_in_a_batch_too(tmp_path: Path) -> None:
    # Without live=True the writer looks every CHECK_EVERY records, when it takes the lock
    # for a new connection, and on close: never a silent success.
    path = tmp_path / "gone.msgpack"
    w = CassetteWriter(path)
    w.write(sample_open())
    os.unlink(path)
    w.write(Message(1, 0.0, Side.CLIENT, Opcode.TEXT, b"lost"))  # (not looked at yet)
    with pytest.raises(CassetteWriteError, match="removed"):
        w.close()
    w = CassetteWriter(path)
    os.unlink(path)
    with pytest.raises(CassetteWriteError, match="removed"):
        for _ in range(writer_module.CHECK_EVERY):
            w.write(Message(1, 0.0, Side.CLIENT, Opcode.TEXT, b"lost"))
    w.close()
    w = CassetteWriter(path)
    os.unlink(path)
    with pytest.raises(CassetteWriteError, match="removed"), w.reserve_conn():
        pass
    w.close()


def test_a_removed_file_is_noticed_before_a_big_message_too(tmp_path: Path) -> None:
    path = tmp_path / "gone.msgpack"
    w = CassetteWriter(path, live=True)
    w.write(sample_open())
    os.unlink(path)
    with pytest.raises(CassetteWriteError, match="removed"):
        w.write(Message(1, 0.0, Side.CLIENT, Opcode.BINARY, bytes(1 << 20)))
    w.close()


@pytest.mark.parametrize("payload_size", [100, 1 << 20])
@pytest.mark.parametrize("cut", ["1", "head", "head+1", "half", "all-1"])
def test_a_short_write_is_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload_size: int, cut: str
) -> None:
    """A write() or writev() the kernel cuts short (a signal, a disk filling up): the
    writer writes the rest, and the cassette reads back whole."""
    real_write, real_writev = os.write, os.writev
    short = {"left": 1}  # the first message's system call is cut; later ones are not

    def point(total: int) -> int:
        head = total - payload_size
        return {
            "1": 1,
            "head": head,
            "head+1": head + 1,
            "half": total // 2,
            "all-1": total - 1,
        }[cut]

    def cut_write(fd: int, data: bytes) -> int:
        if short["left"] and fd == w._fd:
            short["left"] = 0
            return real_write(fd, bytes(data)[: point(len(data))])
        return real_write(fd, data)

    def cut_writev(fd: int, parts: tuple[bytes, ...]) -> int:
        if short["left"] and fd == w._fd:
            short["left"] = 0
            data = b"".join(parts)
            return real_write(fd, data[: point(len(data))])
        return real_writev(fd, parts)

    path = tmp_path / "short.msgpack"
    payload = bytes(range(256)) * (payload_size // 256) + b"\x07" * (payload_size % 256)
    recs: list[Record] = [
        sample_open(),
        Message(1, 0.5, Side.SERVER, Opcode.BINARY, payload),
        Message(1, 0.75, Side.CLIENT, Opcode.TEXT, b"after"),
    ]
    for live in (True, False):
        short["left"] = 1
        with CassetteWriter(path, mode=WriteMode.OVERWRITE, started_at=1.0, live=live) as w:
            w.write(recs[0])
            monkeypatch.setattr(writer_module.os, "write", cut_write)
            monkeypatch.setattr(writer_module.os, "writev", cut_writev)
            w.write(recs[1])
            w.write(recs[2])
            monkeypatch.undo()
        assert short["left"] == 0
        assert read_cassette(path)[1] == recs


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_disk_full_is_loud() -> None:
    with pytest.raises(CassetteWriteError, match="No space left"):
        CassetteWriter("/dev/full", mode=WriteMode.OVERWRITE)


def test_resume_from_offset(tmp_path: Path) -> None:
    path = tmp_path / "c.msgpack"
    recs: list[Record] = [sample_open()] + [
        Message(1, float(i), Side.SERVER, Opcode.BINARY, bytes([i])) for i in range(5)
    ]
    write(path, recs)
    reader = CassetteReader(path)
    seen = list(reader.iter_with_offsets())
    assert [r for _, _, r in seen] == recs
    idx, off, _ = seen[3]
    resumed = list(reader.iter_with_offsets(start=off, index=idx))
    assert [r for _, _, r in resumed] == recs[3:]
    assert resumed[0][:2] == (idx, off)


@given(
    recs=st.lists(records, min_size=1, max_size=20),
    feed=st.sampled_from([1, 40, 1000, reader_module.FEED, 10 * reader_module.FEED]),
    data=st.data(),
)
@SETTINGS
def test_batches_resumed_from_an_offset_are_the_records_up_to_the_last(
    tmp_path: Path, recs: list[Record], feed: int, data: st.DataObject
) -> None:
    path = tmp_path / "c.msgpack"
    writer = data.draw(st.sampled_from([write, write_v1]))
    writer(path, recs)
    reader = CassetteReader(path, allow_reused_ids=True)
    seen = list(reader.iter_with_offsets())
    first = data.draw(st.integers(0, len(seen) - 1))
    last = data.draw(st.integers(first, len(seen) - 1))
    index, start, _ = seen[first]
    got: list[Record] = []
    resume: int | None = start
    while resume is not None:
        batch, resume, index = reader.read_batch(resume, index, seen[last][1], feed=feed)
        assert batch or resume is None  # every call but the last hands out records
        got += batch
    assert got == [r for _, _, r in seen[first : last + 1]]


def test_a_batch_takes_a_big_record_the_long_way(tmp_path: Path) -> None:
    path = tmp_path / "c.msgpack"
    big = Message(1, 0.5, Side.SERVER, Opcode.BINARY, b"x" * (3 * reader_module.FEED))
    recs: list[Record] = [sample_open(), Message(1, 0.1, Side.CLIENT, Opcode.TEXT, b"hi"), big]
    recs += [Note(1, "after", 0.6), Close(1, 0.7, Side.CLIENT, 1000, "", True)]
    write(path, recs)
    reader = CassetteReader(path)
    (_, start, _), *_, (_, last, _) = list(reader.iter_with_offsets())
    batches: list[list[Record]] = []
    resume: int | None = start
    index = 1
    while resume is not None:
        batch, resume, index = reader.read_batch(resume, index, last, feed=1000)
        batches.append(batch)
    assert [r for b in batches for r in b] == recs
    assert [big] in batches  # a record of its own, whatever the feed


# -- bounds, reused ids, and a writer that never writes what the reader refuses ----------


@pytest.mark.parametrize(
    ("record", "needle"),
    [
        (hostile.message(1, t=1e308), "field 't' must be a number of seconds from 0 to"),
        (hostile.message(1, t=-0.5), "field 't' must be a number of seconds"),
        (hostile.close(1, t=MAX_OFFSET + 1), "field 't' must be a number of seconds"),
        (hostile.note(1, t=float("inf")), "field 't' must be a number of seconds"),
        (hostile.open_(1, started_at=7.3e9), "field 'started_at' must be a date"),
        (hostile.open_(1, started_at=-1.0), "field 'started_at' must be a date"),
        (hostile.open_(1, status=99), "field 'status' must be an HTTP status from 100 to 999"),
        (hostile.open_(1, status=1000), "field 'status' must be an HTTP status"),
        (hostile.open_(1, port=65536), "field 'port' must be a port from 0 to 65535"),
        (hostile.open_(2**53 + 1), "field 'conn' must be a connection id from 0 to 2\\*\\*53"),
        (hostile.message(-1), "field 'conn' must be a connection id"),
        (hostile.close(1, code=65536), "field 'code' must be an integer from 0 to 65535"),
        (hostile.open_(1, subprotocols=["x"] * 5000), "corrupt record: an array of 5000 items"),
        (hostile.message(1, t=[1, 2, 3]), "not array of 3 items"),
        (hostile.message(1, data="x" * 500), "not str of 500 characters: 'xxxx"),
    ],
)
def test_out_of_range_values_are_schema_errors(
    tmp_path: Path, record: dict[str, object], needle: str
) -> None:
    # t = 1e308 used to pass and crash stats (OverflowError) and HAR export (ValueError).
    path = tmp_path / "bad.msgpack"
    path.write_bytes(hostile.cassette(hostile.open_(1), record))
    with pytest.raises(CassetteError, match=rf"record 2, byte \d+: .*{needle}"):
        list(CassetteReader(path))


def test_values_at_the_bounds_are_read(tmp_path: Path) -> None:
    path = tmp_path / "edge.msgpack"
    path.write_bytes(
        hostile.cassette(
            hostile.open_(2**53, started_at=7_258_118_399.0, port=65535, status=999),
            hostile.message(2**53, t=MAX_OFFSET),
            hostile.close(2**53, t=0, code=65535),
        )
    )
    _, (op, m, c) = read_cassette(path)
    assert isinstance(op, Open) and (op.conn, op.port, op.status) == (2**53, 65535, 999)
    assert isinstance(m, Message) and m.t == MAX_OFFSET
    assert isinstance(c, Close) and (c.t, c.code) == (0.0, 65535)


def test_a_length_past_the_cap_is_corruption_not_truncation(tmp_path: Path) -> None:
    # A 4 GiB length claim at the end of the file used to read as "the recorder stopped
    # mid-write", and `wstape repair` would have "repaired" it.
    path = tmp_path / "claim.msgpack"
    whole = hostile.pack(hostile.message(1))
    head = whole[: whole.rindex(b"\xa4data") + 5]
    path.write_bytes(hostile.cassette(hostile.open_(1), head + b"\xc6\xff\xff\xff\xff" + b"x"))
    for allow in (False, True):
        with pytest.raises(CassetteError, match="claims 4294967295 bytes") as info:
            list(CassetteReader(path, allow_truncated=allow))
        assert not isinstance(info.value, TruncatedCassette)


def test_a_msgpack_timestamp_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "ts.msgpack"
    junk = hostile.note(None, junk=msgpack.Timestamp(1, 0))
    path.write_bytes(hostile.cassette(junk))
    with pytest.raises(CassetteError, match="extension type -1 \\(a msgpack timestamp\\)"):
        list(CassetteReader(path))


def test_a_reused_connection_id_names_both_records(tmp_path: Path) -> None:
    path = tmp_path / "twice.msgpack"
    write(path, [sample_open(4), Close(4, 1.0, Side.CLIENT, 1000), sample_open(4)])
    with pytest.raises(DuplicateConnection) as info:
        list(CassetteReader(path))
    e = info.value
    assert (e.conn, e.first, e.record) == (4, 1, 3)
    assert str(e).startswith(f"{path}, record 3, byte {e.offset}: connection id 4 ")
    assert "first opened at record 1" in str(e) and "\n" not in str(e)
    assert list(CassetteReader(path, allow_reused_ids=True))[2] == sample_open(4)
    with pytest.raises(DuplicateConnection):  # never append after it
        CassetteWriter(path, mode=WriteMode.APPEND)
    # Resuming in the middle (the replay index, diff) cannot tell, and does not refuse.
    offsets = list(CassetteReader(path, allow_reused_ids=True).iter_with_offsets())
    idx, off, _ = offsets[1]
    assert len(list(CassetteReader(path).iter_with_offsets(start=off, index=idx))) == 2


@pytest.mark.parametrize(
    ("record", "needle"),
    [
        (Message(1, 1e308, Side.CLIENT, Opcode.TEXT, b""), "field 't' must be a number"),
        (Message(1, float("nan"), Side.CLIENT, Opcode.TEXT, b""), "field 't'"),
        (Message(-3, 0.0, Side.CLIENT, Opcode.TEXT, b""), "field 'conn'"),
        (Close(1, 0.0, Side.CLIENT, 70000), "field 'code'"),
        (Close(1, 0.0, Side.CLIENT, 1000, "bad \udcff"), "cannot pack it"),
        (replace(sample_open(), port=-1), "field 'port'"),
        (replace(sample_open(), status=42), "field 'status'"),
        (replace(sample_open(), started_at=1e20), "field 'started_at'"),
        (replace(sample_open(), request_headers=((b"k", "v"),)), "field 'request_headers'"),  # type: ignore[arg-type]
        (Note(1, "x" * (2 << 20)), "field 'text': a string of more than"),
        (Message(2**70, 0.0, Side.CLIENT, Opcode.TEXT, b""), "field 'conn'"),
    ],
)
def test_the_writer_refuses_what_the_reader_would(
    tmp_path: Path, record: Record, needle: str
) -> None:
    path = tmp_path / "w.msgpack"
    w = CassetteWriter(path, started_at=1.0)
    w.write(sample_open())
    size = path.stat().st_size
    with pytest.raises(UnreadableRecord, match=needle) as info:
        w.write(record)
    assert str(info.value).startswith(f"{path}: refusing to write record 2 (")
    assert isinstance(info.value, CassetteWriteError)
    assert path.stat().st_size == size  # nothing written
    w.write(Close(1, 1.0, Side.CLIENT, 1000))  # and the writer still works
    w.close()
    assert [type(r) for r in read_cassette(path)[1]] == [Open, Close]


def test_the_writer_refuses_a_header_it_could_not_read(tmp_path: Path) -> None:
    path = tmp_path / "h.msgpack"
    with pytest.raises(UnreadableRecord, match="record 0 \\(the header\\): field 'started_at'"):
        CassetteWriter(path, started_at=1e308)
    assert not path.exists()


def test_describe_value_is_short() -> None:
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    assert describe_value(deep) == "array of 1 items"
    assert describe_value({"a": 1}) == "map of 1 entries"
    assert describe_value("x" * 10_000).startswith("str of 10000 characters: 'xxx")
    assert len(describe_value(b"\x00" * 10_000)) < 100
    assert describe_value(2**100) == "int of 101 bits"
    assert describe_value(1e308) == "float 1e+308"
    assert describe_value(None) == "nil" and describe_value(True) == "bool True"


@given(recs=st.lists(records, min_size=1, max_size=10))
@SETTINGS
def test_big_records_are_built_field_by_field_to_the_same_records(
    tmp_path: Path, recs: list[Record]
) -> None:
    # Records over BIG_RECORD bytes are built without the Unpacker (each big payload read
    # straight into its bytes): lowered to 0 here, every record goes that way.
    path = tmp_path / "big.msgpack"
    write(path, recs)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reader_module, "BIG_RECORD", 0)
        mp.setattr(reader_module, "DIRECT_READ", 0)
        got = list(CassetteReader(path, allow_reused_ids=True).iter_with_offsets())
    assert got == list(CassetteReader(path, allow_reused_ids=True).iter_with_offsets())


def test_a_big_message_is_read_in_about_its_own_size(tmp_path: Path) -> None:
    path = tmp_path / "big.msgpack"
    payload = bytes(range(256)) * (48 * 1024)  # 12 MiB, over BIG_RECORD
    assert len(payload) > reader_module.BIG_RECORD
    write(path, [sample_open(), Message(1, 1.0, Side.SERVER, Opcode.BINARY, payload)])
    tracemalloc.start()
    try:
        _, (_, message) = read_cassette(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(message, Message) and message.payload == payload
    assert peak < 1.5 * len(payload)  # the Unpacker alone would need twice its size
