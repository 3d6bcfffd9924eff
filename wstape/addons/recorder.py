"""The recorder: a mitmproxy addon that writes WebSocket traffic to a cassette as it happens.

Each hook becomes one record, written and flushed at once, so a killed proxy loses at most
the record being written:

- ``websocket_start``: an :class:`Open` with the upgrade request and the 101 response;
- ``websocket_message``: a :class:`Message` (fragments arrive reassembled; ping and pong
  never reach addons);
- ``websocket_end``: a :class:`Close` (who closed, code, reason, whether a Close frame was
  on the wire: mitmproxy reports 1006 with no reason when TCP dropped without one);
- ``response`` with a status other than 101 to an ``Upgrade: websocket`` request: an
  :class:`Open` carrying that status, reason and body (nothing follows a refusal).

mitmproxy does not call ``websocket_end`` for connections still open when it stops, so
:meth:`Recorder.done` (and :meth:`Recorder.stop_recording`, which ``wstape record`` calls
before it cancels live connections) writes a ``Close(by=None, code=None)`` and a note for
each of them: every connection in a cassette has an end.

A write failure (disk full, file removed) stops recording loudly: one error line, the
message being relayed is dropped, and the proxy is shut down, so no traffic passes
unrecorded. Add this addon before any addon that modifies messages (first ``-s`` script):
it records what the peers sent, and a length-changing edit can corrupt the relayed copy.

Every record goes through :class:`wstape.core.redaction.Redactor` before it is written
(the engine ``wstape redact`` uses too): the default secret names unless
``wstape_default_redaction`` is off, the names the options add, and the values of
``wstape_secret_env`` / ``wstape_secret_file`` wherever they appear. It fails closed: a
message it cannot redact precisely is written as ``<redacted>`` with a note, and an
upgrade it cannot redact is refused (the connection is killed), never relayed
unrecorded. The cassette is created with mode 0600.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from mitmproxy import ctx, exceptions, flowfilter, http
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.websocket import WebSocketMessage

from wstape.cassettes import (
    CassetteError,
    CassetteExists,
    CassetteWriteError,
    CassetteWriter,
    WriteMode,
)
from wstape.core.closecodes import NEVER_ON_WIRE
from wstape.core.errors import ConfigError
from wstape.core.model import Close, Message, Note, Opcode, Open, Record, Side
from wstape.core.redaction import (
    DEFAULT_HEADERS,
    DEFAULT_KEYS,
    MARKER,
    MARKER_BYTES,
    Counts,
    Policy,
    Redactor,
)
from wstape.core.rules.close import proxy_refusal, proxy_refusal_note
from wstape.core.rules.session import POLLING_UPGRADE_NOTE, polling_upgrade
from wstape.interchange.flows import (
    STOPPED_NOTE,
    format_address,
    is_upgrade_request,
    open_from_flow,
)
from wstape.tools.redact import load_secrets

logger = logging.getLogger(__name__)

REDACTED = MARKER_BYTES
"""What a redacted header value or JSON value is replaced with."""
CASSETTE_MODE = 0o600
"""The permissions a cassette is recorded with: it may hold what redaction missed."""
FAILED_NOTE = "payload withheld (written as <redacted>): redaction failed ({error})"

_OPTION_NAMES = {
    "header": "wstape_redact_headers",
    "json_key": "wstape_redact_json_keys",
    "query": "wstape_redact_query",
    "secret_env": "wstape_secret_env",
    "secret_file": "wstape_secret_file",
    "secret": "wstape_secret_env/wstape_secret_file",
}
_REDACTION_OPTIONS = frozenset(
    {
        "wstape_default_redaction",
        "wstape_redact_headers",
        "wstape_redact_json_keys",
        "wstape_redact_query",
        "wstape_secret_env",
        "wstape_secret_file",
    }
)


@dataclass
class RecorderStats:
    """Running totals, read by ``wstape record``'s status line and summary."""

    open: int = 0
    """Connections recorded and still open."""
    closed: int = 0
    refused: int = 0
    """Upgrades the server answered with a status other than 101."""
    upstream_failures: int = 0
    """Upgrades that failed before the server answered, backend connections that failed."""
    upstream_failure: str | None = None
    """The first of those, in a few words (``cannot connect to HOST:PORT (...)``)."""
    upstream_unverified: bool = False
    """That first failure was the upstream's certificate failing verification (a
    self-signed backend: ``ssl_insecure`` records it)."""
    messages_client: int = 0
    messages_server: int = 0
    bytes_client: int = 0
    bytes_server: int = 0
    redacted: Counts = field(default_factory=Counts)
    """What redaction replaced so far."""

    @property
    def messages(self) -> int:
        return self.messages_client + self.messages_server

    @property
    def bytes(self) -> int:
        return self.bytes_client + self.bytes_server


@dataclass
class _Live:
    """A recorded connection that has not ended yet."""

    conn: int
    started_at: float
    writer: CassetteWriter


def private_writer(path: str | Path, mode: WriteMode) -> CassetteWriter:
    """A :class:`CassetteWriter` on a file only its owner can read (0600) before any
    record is written.

    A missing file is created empty with that mode before the writer opens it; an
    existing one is restricted once the writer has accepted it (before that, the writer
    writes at most a header), so a file the writer refuses (an older format to append
    to, not a cassette, a directory) keeps its mode. Raises what :class:`CassetteWriter`
    raises (and leaves no file it created behind).
    """
    target = Path(path)
    created = False
    try:
        if not target.exists():
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, CASSETTE_MODE))
            created = True
    except OSError:
        pass  # the writer reports the real problem (no such directory, not allowed) itself
    try:
        writer = CassetteWriter(target, mode=mode, live=True)
    except BaseException:
        if created:
            try:
                target.unlink()
            except OSError:
                pass
        raise
    if not created:
        try:
            os.fchmod(writer.fileno(), CASSETTE_MODE)
        except OSError:
            pass  # (not the owner: the file stays as it was, as before)
    return writer


def build_redactor(
    *,
    defaults: bool = True,
    headers: Sequence[str] = (),
    json_keys: Sequence[str] = (),
    query: Sequence[str] = (),
    secret_env: Sequence[str] = (),
    secret_files: Sequence[str | Path] = (),
    counts: Counts | None = None,
) -> Redactor:
    """The recorder's redaction engine; ConfigError (``option`` set) for a bad setting."""
    secrets = load_secrets(env=secret_env, files=secret_files)
    policy = Policy.build(
        defaults=defaults,
        headers=[str(h).strip() for h in headers],
        json_keys=[str(k) for k in json_keys],
        query=[str(q) for q in query],
        secrets=secrets,
    )
    return Redactor(policy, counts=counts)


# mitmproxy leaves these few functions unannotated; wrap them once instead of ignoring
# no-untyped-call at every use.
def _options_error(message: str) -> exceptions.OptionsError:
    return exceptions.OptionsError(message)  # type: ignore[no-untyped-call]


def _kill(flow: http.HTTPFlow) -> None:
    if flow.killable:
        flow.kill()  # type: ignore[no-untyped-call]


def _drop(message: WebSocketMessage) -> None:
    message.drop()  # type: ignore[no-untyped-call]


def _shutdown_master() -> None:
    ctx.master.shutdown()  # type: ignore[no-untyped-call]


def _unverified(error: str) -> bool:
    """Whether mitmproxy's error text is an upstream certificate failing verification."""
    return "certificate verify failed" in error.lower()


def _ssl_insecure() -> bool:
    """Whether mitmproxy was told not to verify upstream certificates."""
    try:
        return bool(ctx.options.ssl_insecure)
    except AttributeError:  # (no master: a recorder driven by hand, in a unit test)
        return False


class Recorder:
    """Write WebSocket connections passing through mitmproxy to a wstape cassette.

    ``writer`` hands in a cassette ``wstape record`` already opened (so it can report
    errors with its own exit codes); otherwise the addon opens ``wstape_cassette``.
    ``on_failure`` replaces the default reaction to a write failure (shutting the master
    down).
    """

    def __init__(
        self,
        *,
        writer: CassetteWriter | None = None,
        trim_messages: bool | None = None,
        on_failure: Callable[[CassetteWriteError], None] | None = None,
        on_record: Callable[[Record], None] | None = None,
    ) -> None:
        """``on_record`` is called with every record once it is written (``wstape record
        -v`` prints them)."""
        self.stats = RecorderStats()
        self._on_record = on_record
        self.failure: CassetteWriteError | None = None
        self._writer = writer
        self._owns_writer = writer is None
        self._trim_override = trim_messages
        self._trim = bool(trim_messages)
        self._on_failure = on_failure
        self._filter: flowfilter.TFilter | None = None
        self._redactor = Redactor(Policy.build(), counts=self.stats.redacted)
        self._live: dict[str, _Live] = {}
        self._idle = asyncio.Event()
        """Set while no recorded WebSocket is open."""
        self._idle.set()
        self._stopped = False
        self._warned_polling = False
        """The long-polling warning was logged (once a run)."""
        self._unreachable: dict[str, str] = {}
        """Client connections whose backend could not be reached (said once), by id:
        the error, which the failed upgrade's flow repeats."""

    @property
    def writer(self) -> CassetteWriter | None:
        return self._writer

    async def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every recorded WebSocket has ended (so a
        connection the client just closed is recorded with its close before a stop).
        False if some were still open at the timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # -- options -------------------------------------------------------------------------

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "wstape_cassette",
            # mitmproxy's option types are typing forms (Optional[str]), not classes:
            Optional[str],  # type: ignore[arg-type]  # noqa: UP045
            None,
            "Record WebSocket connections to this wstape cassette (a msgpack file). Nothing "
            "is recorded while it is unset. An existing non-empty file is refused unless "
            "wstape_append or wstape_overwrite is set.",
        )
        loader.add_option(
            "wstape_append",
            bool,
            False,
            "Add to an existing wstape cassette (same format version) instead of refusing "
            "it; connection ids continue after the highest one in the file.",
        )
        loader.add_option(
            "wstape_overwrite",
            bool,
            False,
            "Replace an existing wstape cassette instead of refusing it.",
        )
        loader.add_option(
            "wstape_filter",
            Optional[str],  # type: ignore[arg-type]  # noqa: UP045 - see above
            None,
            "Record only WebSocket connections whose upgrade matches this mitmproxy filter "
            "expression, e.g. '~u /chat' or '~d example.com'. Unset records every "
            "connection.",
        )
        loader.add_option(
            "wstape_default_redaction",
            bool,
            True,
            "Redact the common secret names: the values of the headers "
            + ", ".join(DEFAULT_HEADERS)
            + " (case-insensitive; the names are kept), of the query parameters and JSON "
            "keys (at any depth, also in JSON inside JSON strings) "
            + ", ".join(DEFAULT_KEYS)
            + ", and credentials among the offered subprotocols. Turn off to redact only "
            "what the other wstape_redact_* and wstape_secret_* options name.",
        )
        loader.add_option(
            "wstape_redact_headers",
            Sequence[str],
            [],
            "More request and response headers (case-insensitive, * matches any run, e.g. "
            "X-*-Key) whose values are written as '<redacted>'; the header names are kept. "
            "Sec-WebSocket-Protocol is redacted item by item, with the subprotocol fields "
            "recorded from it.",
        )
        loader.add_option(
            "wstape_redact_json_keys",
            Sequence[str],
            [],
            "More JSON keys (case-insensitive, - and _ alike, at any depth) whose values are "
            "written as '<redacted>' in text messages. Only the value changes; the rest of "
            "the message keeps its bytes. What is relayed to the peers is never changed.",
        )
        loader.add_option(
            "wstape_redact_query",
            Sequence[str],
            [],
            "More query parameters whose values are written as '<redacted>' in the "
            "request target (and in Referer/Origin/Location URLs).",
        )
        loader.add_option(
            "wstape_secret_env",
            Sequence[str],
            [],
            "Names of environment variables whose values must never be written: every "
            "occurrence (headers, query, subprotocols, text and binary payloads, close "
            "reasons) is redacted, and a note and the summary say so. Binary payloads are "
            "overwritten in place with as many bytes.",
        )
        loader.add_option(
            "wstape_secret_file",
            Sequence[str],
            [],
            "Files with one secret value per line (line endings stripped, empty lines "
            "skipped), treated like wstape_secret_env.",
        )
        loader.add_option(
            "wstape_trim_messages",
            bool,
            False,
            "Remove each WebSocket message from flow.websocket.messages once it is written "
            "(the last one stays for later addons), so a long connection does not grow "
            "mitmproxy's memory. Other addons and the UI then see only the latest message. "
            "wstape record turns this on.",
        )

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        if "wstape_filter" in updated:
            expression = opts.wstape_filter
            if expression:
                try:
                    self._filter = flowfilter.parse(expression)
                except ValueError as e:
                    raise _options_error(f"wstape_filter: {e}") from e
            else:
                self._filter = None
        if updated & _REDACTION_OPTIONS:
            try:
                self._redactor = build_redactor(
                    defaults=bool(opts.wstape_default_redaction),
                    headers=list(opts.wstape_redact_headers),
                    json_keys=list(opts.wstape_redact_json_keys),
                    query=list(opts.wstape_redact_query),
                    secret_env=list(opts.wstape_secret_env),
                    secret_files=list(opts.wstape_secret_file),
                    counts=self.stats.redacted,
                )
            except ConfigError as e:
                name = _OPTION_NAMES.get(e.option or "", "wstape redaction")
                raise _options_error(f"{name}: {e.message}") from None
        if "wstape_trim_messages" in updated:
            self._trim = (
                self._trim_override
                if self._trim_override is not None
                else bool(opts.wstape_trim_messages)
            )
        if updated & {"wstape_cassette", "wstape_append", "wstape_overwrite"}:
            self._configure_cassette(
                opts.wstape_cassette, opts.wstape_append, opts.wstape_overwrite
            )

    def _configure_cassette(self, path: str | None, append: bool, overwrite: bool) -> None:
        try:
            mode = WriteMode.from_flags(append, overwrite)
        except ConfigError:
            raise _options_error("wstape_append and wstape_overwrite cannot both be set") from None
        if self._writer is not None and path and Path(path) == self._writer.path:
            return  # the cassette already being written (e.g. handed in by wstape record)
        if self._writer is not None and self._owns_writer:
            self.stop_recording("recording moved to another cassette")
            self._close_writer()
        if not path:
            self._writer = None
            return
        try:
            self._writer = private_writer(path, mode)
        except CassetteExists as e:
            raise _options_error(
                f"wstape_cassette: {e}; set wstape_append=true to add to it or "
                "wstape_overwrite=true to replace it"
            ) from None
        except CassetteError as e:
            raise _options_error(f"wstape_cassette: {e}") from None
        except CassetteWriteError as e:
            raise _options_error(f"wstape_cassette: {e}") from None
        self._owns_writer = True
        self._stopped = False
        self.failure = None
        logger.info(f"wstape: recording WebSocket connections to {path}")

    def running(self) -> None:
        if self._writer is None:
            logger.warning("wstape: wstape_cassette is not set; nothing is being recorded")

    # -- hooks ---------------------------------------------------------------------------

    def response(self, flow: http.HTTPFlow) -> None:
        """A refused upgrade: the only time an ``Open`` is written from this hook."""
        response = flow.response
        if response is None or flow.websocket is not None or response.status_code == 101:
            return
        if not is_upgrade_request(flow.request):
            return
        if self.failure is not None:
            _kill(flow)  # recording has failed: let nothing through unrecorded
            return
        writer = self._writer
        if writer is None or self._stopped or not self._wanted(flow):
            return
        notes: list[str] = []
        try:
            # the id is held against other processes appending until its open is written
            with writer.reserve_conn() as conn:
                record = self._open_record(flow, conn, notes)
                written = record is not None and self._write(writer, record)
        except CassetteWriteError as e:
            self._fail(e)
            return
        if written:
            self.stats.refused += 1
            for text in notes:
                self._note(writer, text, conn, None)

    def websocket_start(self, flow: http.HTTPFlow) -> None:
        writer = self._writer
        if writer is None or self._stopped or not self._wanted(flow):
            return
        notes: list[str] = []
        try:
            # the id is held against other processes appending until its open is written
            with writer.reserve_conn() as conn:
                record = self._open_record(flow, conn, notes)
                written = record is not None and self._write(writer, record)
        except CassetteWriteError as e:
            self._fail(e)
            return
        if written:
            assert record is not None
            self._live[flow.id] = _Live(conn, record.started_at, writer)
            self._idle.clear()
            self.stats.open += 1
            if polling_upgrade(record.query):
                notes.append(POLLING_UPGRADE_NOTE)
                if not self._warned_polling:
                    self._warned_polling = True
                    logger.warning(f"wstape: connection {conn}: {POLLING_UPGRADE_NOTE}")
            for text in notes:
                self._note(writer, text, conn, 0.0)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        ws = flow.websocket
        if ws is None:  # pragma: no cover - mitmproxy only calls this for WebSocket flows
            return
        message = ws.messages[-1]
        live = self._live.get(flow.id)
        if live is not None:
            is_text = message.is_text
            notes: list[str] = []
            record = Message(
                conn=live.conn,
                t=max(0.0, message.timestamp - live.started_at),
                side=Side.CLIENT if message.from_client else Side.SERVER,
                opcode=Opcode.TEXT if is_text else Opcode.BINARY,
                payload=self._redact_payload(message.content, is_text, notes),
            )
            if self._write(live.writer, record):
                size = len(message.content)
                if message.from_client:
                    self.stats.messages_client += 1
                    self.stats.bytes_client += size
                else:
                    self.stats.messages_server += 1
                    self.stats.bytes_server += size
                for text in notes:
                    self._note(live.writer, text, live.conn, record.t)
            else:
                _drop(message)
        elif self.failure is not None or (self._stopped and self._writer is not None):
            _drop(message)  # recording failed or stopped: relay nothing unrecorded
        if self._trim:
            del ws.messages[:-1]

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        live = self._live.pop(flow.id, None)
        if not self._live:
            self._idle.set()
        ws = flow.websocket
        if live is None or ws is None:
            return
        self.stats.open -= 1
        self.stats.closed += 1
        code = ws.close_code
        end = ws.timestamp_end or time.time()
        if ws.closed_by_client is None:
            by = None
        else:
            by = Side.CLIENT if ws.closed_by_client else Side.SERVER
        close = Close(
            conn=live.conn,
            t=max(0.0, end - live.started_at),
            by=by,
            code=code,
            reason=ws.close_reason or "",
            on_wire=code is not None and code not in NEVER_ON_WIRE,
        )
        notes: list[str] = []
        try:
            redacted, notes = self._redactor.record(close)
        except Exception as e:  # a wstape bug: write no reason rather than a secret
            logger.error(f"wstape: redaction failed ({type(e).__name__}: {e})")
            redacted, notes = replace(close, reason=MARKER), []
        if by is not None and code is not None and proxy_refusal(code, close.reason):
            # wsproto refused that side's frame and closed both sides with its own code:
            # say so, the code and reason are mitmproxy's, not the peer's
            notes.append(proxy_refusal_note(by.value, code, close.reason))
        if self._write(live.writer, redacted):
            for text in notes:
                self._note(live.writer, text, live.conn, close.t)

    def error(self, flow: http.HTTPFlow) -> None:
        """An upgrade that failed before the server answered: say so, record nothing."""
        if (
            self._writer is None
            or flow.response is not None
            or flow.websocket is not None
            or flow.error is None
            or not is_upgrade_request(flow.request)
            or not self._wanted(flow)
        ):
            return
        if self._unreachable.pop(flow.client_conn.id, None) == flow.error.msg:
            return  # server_connect_error said so for this client connection
        what = f"upgrade to {flow.request.pretty_url} failed before the server answered"
        self._upstream_failed(f"{what} ({flow.error.msg})")
        hint = ""
        if _unverified(flow.error.msg) and not _ssl_insecure():
            hint = " (a backend with a self-signed certificate? --ssl-insecure skips the check)"
        logger.warning(f"wstape: {what} ({flow.error.msg}); nothing recorded for it{hint}")

    def server_connect_error(self, data: ServerConnectionHookData) -> None:
        """The backend is unreachable (e.g. a reverse proxy in front of a stopped server)."""
        if self._writer is None:
            return
        address = format_address(data.server.address) or "the server"
        self._upstream_failed(f"cannot connect to {address} ({data.server.error})")
        if len(self._unreachable) >= 1024:  # (the error hook that pops it may never come)
            self._unreachable.clear()
        self._unreachable[data.client.id] = str(data.server.error)
        logger.warning(
            f"wstape: cannot connect to {address} ({data.server.error}); nothing is "
            "recorded for that client connection"
        )

    def _upstream_failed(self, what: str) -> None:
        self.stats.upstream_failures += 1
        if self.stats.upstream_failure is None:
            self.stats.upstream_failure = what
            self.stats.upstream_unverified = _unverified(what)

    def done(self) -> None:
        self.stop_recording(STOPPED_NOTE)
        if self._owns_writer:
            self._close_writer()

    # -- shutdown ------------------------------------------------------------------------

    def stop_recording(self, note: str = STOPPED_NOTE) -> int:
        """End every connection still open with ``Close(by=None)`` and a note; record no more.

        Returns how many connections were closed out. Events that arrive afterwards for
        those connections (e.g. the 1006 mitmproxy reports when its handlers are
        cancelled) are ignored.
        """
        self._stopped = True
        live, self._live = self._live, {}
        self._idle.set()
        now = time.time()
        for entry in live.values():
            t = max(0.0, now - entry.started_at)
            self.stats.open -= 1
            self.stats.closed += 1
            if self._write(
                entry.writer,
                Close(conn=entry.conn, t=t, by=None, code=None, reason="", on_wire=False),
            ):
                self._note(entry.writer, note, entry.conn, t)
        return len(live)

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except CassetteWriteError as e:
            self._fail(e)

    # -- helpers -------------------------------------------------------------------------

    def _wanted(self, flow: http.HTTPFlow) -> bool:
        return self._filter is None or bool(self._filter(flow))

    def _open_record(self, flow: http.HTTPFlow, conn: int, notes: list[str]) -> Open | None:
        """The redacted ``open``; None (and the flow killed) when redaction failed."""
        opened = open_from_flow(flow, conn)
        try:
            return self._redactor.open(opened, notes)
        except Exception as e:  # a wstape bug: refuse the connection rather than leak
            logger.error(
                f"wstape: redaction of the upgrade to {flow.request.pretty_url} failed "
                f"({type(e).__name__}: {e}); the connection is refused, nothing recorded"
            )
            _kill(flow)
            return None

    def _redact_payload(self, payload: bytes, text: bool, notes: list[str]) -> bytes:
        try:
            return self._redactor.payload(payload, text, notes)
        except Exception as e:  # a wstape bug: write the marker, never the secret
            logger.error(
                f"wstape: redaction failed ({type(e).__name__}: {e}); the message is "
                "recorded as <redacted>"
            )
            self.stats.redacted.withheld += 1
            notes.append(FAILED_NOTE.format(error=type(e).__name__))
            return MARKER_BYTES

    def _write(self, writer: CassetteWriter, record: Record) -> bool:
        if self.failure is not None:
            return False
        try:
            writer.write(record)
        except CassetteWriteError as e:
            self._fail(e)
            return False
        if self._on_record is not None:
            self._on_record(record)
        return True

    def _note(self, writer: CassetteWriter, text: str, conn: int, t: float | None) -> None:
        if self.failure is not None:
            return
        self._write(writer, Note(conn=conn, text=text, t=t))

    def _fail(self, error: CassetteWriteError) -> None:
        if self.failure is not None:
            return
        self.failure = error
        self._stopped = True
        logger.error(
            f"wstape: {error}; recording stopped, shutting the proxy down so that no "
            "traffic passes unrecorded"
        )
        if self._on_failure is not None:
            self._on_failure(error)
        else:
            _shutdown_master()


class ScriptRecorder(Recorder):
    """The recorder ``wstape addon-path`` loads into mitmdump, mitmweb or mitmproxy.

    mitmproxy logs any exception a script's ``configure`` raises while the script loads
    with its traceback (``error in script ...``), an OptionsError included. So until
    mitmproxy is running, an option error (an existing cassette without
    ``wstape_append``, ``wstape_append`` onto a format-1 cassette, a bad filter) is
    logged as one line, ``wstape: error: ...``, and nothing is recorded; mitmproxy then
    refuses to start ("Error logged during startup, exiting..."). Once it runs (an
    option set from mitmproxy's console or web UI), the OptionsError is raised as
    :class:`Recorder` raises it: mitmproxy refuses the new value and says why in a line.
    """

    def __init__(self) -> None:
        super().__init__()
        self._running = False

    def configure(self, updated: set[str]) -> None:
        try:
            super().configure(updated)
        except exceptions.OptionsError as e:
            if self._running:
                raise
            logger.error(f"wstape: error: {e}")

    def running(self) -> None:
        self._running = True
        super().running()
