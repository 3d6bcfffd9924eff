"""Real protocol servers and clients, and the record -> replay cycle, for tests/protocols and
bench/protocols_today.py.

- :data:`SERVERS`: one real server per protocol (python-socketio on aiohttp, graphql-ws on
  ws, mosquitto, rpc-websockets, stomp-broker-js, a ``websockets`` UUID-JSON server), each
  on 127.0.0.1 and a port of its own, read from its ready line (``{"ready": true, "port":
  N}``; mosquitto: its "running" log line);
- :data:`CLIENTS`: the client flows (``py/*.py``, ``js/*.cjs``), each taking a URL and
  ``--variant normal|different|quit-early`` and printing one JSON result line;
- :data:`SESSIONS`: protocol x client (x a variation such as ``--binary``), what the
  measurement and the tests run;
- :func:`start_server`, :func:`run_client`, :func:`record_session`,
  :func:`replay_session`, :func:`run_cycle`, :func:`run_cycles`: start a server, run a
  client against a URL, record a session through ``wstape record --mode reverse``, replay
  a cassette with ``wstape replay --speed 0`` to the same client, the two in a row, many
  cycles at once.

Nothing here sleeps for readiness: ready lines and ready files are waited on with
timeouts, and a process that exits first fails with its output. Everything is synchronous
(threads drain the processes' output), so the same code runs in pytest and in a plain
script; ``run_cycles`` runs several sessions at once on a thread pool.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers.servers import OutputReader

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PY = HERE / "py"
JS = HERE / "js"
NODE_MODULES_ENV = "WSTAPE_NODE_MODULES"
DEFAULT_NODE_MODULES = REPO / ".ci" / "node_modules"
REQUIRE_ENV = "WSTAPE_REQUIRE_CLIENTS"
SETUP_HINT = "run `bash .ci/setup-protocols.sh` (CI does)"
PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")

START_TIMEOUT = 20.0
"""Seconds a server or wstape process may take to say it is listening (2 shared cores,
several sessions at once)."""
READY = re.compile(r'^\{"ready": ?true, ?"port": ?(\d+)\}$')
MOSQUITTO_RUNNING = re.compile(r"mosquitto version \S+ running")


# -- what is installed ------------------------------------------------------------------


def node_modules() -> Path | None:
    """$WSTAPE_NODE_MODULES, else .ci/node_modules, if it holds the protocol packages."""
    configured = os.environ.get(NODE_MODULES_ENV)
    for candidate in (Path(configured) if configured else None, DEFAULT_NODE_MODULES):
        if candidate is not None and candidate.is_dir():
            return candidate
    return None


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def _node_missing(packages: Sequence[str]) -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    modules = node_modules()
    lacking = [
        p for p in packages if modules is None or not (modules / p / "package.json").is_file()
    ]
    if lacking:
        where = modules or f"${NODE_MODULES_ENV} or {DEFAULT_NODE_MODULES}"
        return f"npm package(s) {', '.join(lacking)} not in {where}: {SETUP_HINT}"
    return None


def _python_missing(modules: Sequence[str]) -> str | None:
    import importlib.util

    lacking = [m for m in modules if importlib.util.find_spec(m) is None]
    if lacking:
        return f"Python module(s) {', '.join(lacking)} missing: pip install -e '.[dev]'"
    return None


# -- servers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSpec:
    name: str
    runtime: str
    """python | node | mosquitto"""
    script: str
    """py/NAME.py or js/NAME.cjs (empty for mosquitto)"""
    url: str
    """The client URL, given the port: ``{port}`` is replaced."""
    subprotocol: str | None
    """What the server chooses for these clients (what the cassette must say)."""
    needs: tuple[str, ...] = ()
    """npm packages (node) or Python modules (python) the server needs."""

    def url_for(self, port: int) -> str:
        return self.url.format(port=port)

    def missing(self) -> str | None:
        if self.runtime == "mosquitto":
            if mosquitto_binary() is None:
                return f"mosquitto is not installed: {SETUP_HINT} or apt-get install mosquitto"
            return None
        if self.runtime == "node":
            return _node_missing(self.needs)
        return _python_missing(self.needs)


SERVERS: dict[str, ServerSpec] = {
    s.name: s
    for s in (
        ServerSpec(
            "socketio",
            "python",
            "socketio_server.py",
            "http://127.0.0.1:{port}",
            None,
            ("socketio", "aiohttp"),
        ),
        ServerSpec(
            "graphql-ws",
            "node",
            "graphql_server.cjs",
            "ws://127.0.0.1:{port}/graphql",
            "graphql-transport-ws",
            ("ws", "graphql", "graphql-ws"),
        ),
        ServerSpec("mqtt", "mosquitto", "", "ws://127.0.0.1:{port}/mqtt", "mqtt"),
        ServerSpec(
            "json-rpc",
            "node",
            "rpc_server.cjs",
            "ws://127.0.0.1:{port}/",
            None,
            ("rpc-websockets",),
        ),
        ServerSpec(
            "stomp",
            "node",
            "stomp_server.cjs",
            "ws://127.0.0.1:{port}/stomp",
            "v12.stomp",
            ("stomp-broker-js",),
        ),
        ServerSpec(
            "uuid-json",
            "python",
            "uuidjson_server.py",
            "ws://127.0.0.1:{port}/rpc",
            None,
            ("websockets",),
        ),
    )
}


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without proxy variables, with NODE_PATH set for the npm packages."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_ENV}
    modules = node_modules()
    if modules is not None:
        env["NODE_PATH"] = str(modules)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Process:
    """A subprocess whose stdout and stderr are drained by threads (never blocking it)."""

    def __init__(self, argv: Sequence[str], *, cwd: Path | None = None, **env: str) -> None:
        self.argv = [str(a) for a in argv]
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=clean_env(**env),
            cwd=cwd,
        )
        self.stdout = OutputReader(self.proc.stdout)
        self.stderr = OutputReader(self.proc.stderr)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_line(
        self, pattern: re.Pattern[str], timeout: float = START_TIMEOUT, *, stderr: bool = False
    ) -> re.Match[str]:
        """The first stdout (or stderr) line matching ``pattern``; RuntimeError with the
        output if the process exits first or nothing matches in time."""
        try:
            return (self.stderr if stderr else self.stdout).wait_for(pattern, timeout)
        except TimeoutError:
            raise RuntimeError(
                f"{' '.join(self.argv[:3])}: no line matching {pattern.pattern!r} "
                f"(exit code {self.proc.poll()}):\n{self.output}"
            ) from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Send ``sig`` and wait; SIGKILL after ``timeout`` (then None is returned)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float, *, kill: bool = True) -> int | None:
        """The exit code, or None if it did not exit within ``timeout`` (then it is killed
        unless ``kill`` is false)."""
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            if not kill:
                return None
            self.kill()
            code = None
        self.stdout.join(5)
        self.stderr.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def output(self) -> str:
        return f"--- stdout\n{self.stdout.text}\n--- stderr\n{self.stderr.text}"


@dataclass
class RunningServer:
    spec: ServerSpec
    port: int
    process: Process

    @property
    def url(self) -> str:
        return self.spec.url_for(self.port)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


MOSQUITTO_CONF = """\
# mosquitto 2.0 for one test session: a websockets listener on 127.0.0.1 only.
# A websockets listener alone exits "Unable to start any listening sockets" and binds every
# interface despite the address; a plain MQTT listener on another loopback port plus
# socket_domain ipv4 on both fixes both.
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
listener {plain} 127.0.0.1
socket_domain ipv4
listener {ws} 127.0.0.1
protocol websockets
socket_domain ipv4
"""


def _start_mosquitto(spec: ServerSpec, workdir: Path) -> RunningServer:
    """mosquitto cannot listen on port 0: pick two free ports, and pick again if another
    process took one in between (mosquitto then exits before saying it runs)."""
    binary = mosquitto_binary()
    assert binary is not None, spec.missing()
    last = ""
    for attempt in range(5):
        ws_port, plain_port = free_port(), free_port()
        conf = workdir / f"mosquitto-{attempt}.conf"
        conf.write_text(MOSQUITTO_CONF.format(plain=plain_port, ws=ws_port), encoding="utf-8")
        process = Process([binary, "-c", conf], cwd=workdir)
        try:
            process.wait_line(MOSQUITTO_RUNNING, stderr=True)  # stdout would be buffered
        except RuntimeError as e:
            last = str(e)
            process.stop()
            if "Address already in use" in last:
                continue
            raise
        return RunningServer(spec, ws_port, process)
    raise RuntimeError(f"mosquitto never started:\n{last}")


def launch_server(name: str, workdir: Path) -> RunningServer:
    """Start server ``name`` (a key of :data:`SERVERS`) and wait for its ready line."""
    spec = SERVERS[name]
    if spec.runtime == "mosquitto":
        return _start_mosquitto(spec, workdir)
    if spec.runtime == "node":
        argv = ["node", JS / spec.script]
    else:
        argv = [sys.executable, PY / spec.script]
    process = Process(argv, cwd=workdir)
    try:
        port = int(process.wait_line(READY).group(1))
    except BaseException:
        process.stop()
        raise
    return RunningServer(spec, port, process)


@contextlib.contextmanager
def start_server(name: str, workdir: Path) -> Iterator[RunningServer]:
    """``with start_server("mqtt", tmp) as server: server.url``; stopped (SIGTERM) after."""
    server = launch_server(name, workdir)
    try:
        yield server
    finally:
        server.process.stop()


# -- clients ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientSpec:
    name: str
    runtime: str
    """python | node"""
    script: str
    flags: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    hold: float = 0.0
    """The flow's default --hold (seconds connected after its exchange), for timeouts."""

    def argv(self, url: str, variant: str, extra: Sequence[str]) -> list[str]:
        if self.runtime == "node":
            head = ["node", str(JS / self.script)]
        else:
            head = [sys.executable, str(PY / self.script)]
        return [*head, url, *self.flags, "--variant", variant, *extra]

    def missing(self) -> str | None:
        if self.runtime == "node":
            return _node_missing(self.needs)
        return _python_missing(self.needs)


@dataclass
class ClientRun:
    """What a client process did: its exit code and its parsed result line."""

    client: str
    url: str
    variant: str
    returncode: int | None
    """None: killed after the timeout."""
    result: dict[str, Any]
    stderr: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and bool(self.result.get("ok"))

    @property
    def error(self) -> str | None:
        if self.ok:
            return None
        return str(self.result.get("error") or f"exit code {self.returncode}")


def run_client(
    client: ClientSpec,
    url: str,
    *,
    variant: str = "normal",
    timeout: float | None = None,
    extra: Sequence[str] = (),
) -> ClientRun:
    """Run ``client`` against ``url`` and parse its JSON result line.

    ``timeout`` bounds the flow (the client's own ``--timeout``); the process gets 10 s
    more before it is killed. A client that prints no result line gets
    ``{"ok": false, "error": ...}`` with its output.
    """
    flow_timeout = timeout if timeout is not None else client.hold + 15.0
    argv = client.argv(url, variant, [*extra, "--timeout", f"{flow_timeout:g}"])
    t0 = time.monotonic()
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=clean_env(),
            timeout=flow_timeout + 10,
            check=False,
        )
        code: int | None = done.returncode
        out, err = done.stdout, done.stderr
    except subprocess.TimeoutExpired as e:
        code = None
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
    seconds = time.monotonic() - t0
    result: dict[str, Any] | None = None
    for line in reversed(out.splitlines()):
        with contextlib.suppress(ValueError):
            parsed = json.loads(line)
            if isinstance(parsed, dict) and "ok" in parsed:
                result = parsed
                break
    if result is None:
        why = "killed after the timeout" if code is None else f"exit code {code}"
        tail = (err.strip().splitlines() or ["no output"])[-1]
        result = {"ok": False, "error": f"no result line ({why}): {tail}", "events": []}
    return ClientRun(client.name, url, variant, code, result, err, seconds)


CLIENTS: dict[str, ClientSpec] = {
    c.name: c
    for c in (
        ClientSpec(
            "python-socketio", "python", "socketio_client.py", (), ("socketio", "aiohttp"), 3.5
        ),
        ClientSpec(
            "python-socketio binary",
            "python",
            "socketio_client.py",
            ("--binary",),
            ("socketio", "aiohttp"),
            3.5,
        ),
        ClientSpec(
            "socket.io-client", "node", "socketio_client.cjs", (), ("socket.io-client",), 3.5
        ),
        ClientSpec(
            "socket.io-client binary",
            "node",
            "socketio_client.cjs",
            ("--binary",),
            ("socket.io-client",),
            3.5,
        ),
        ClientSpec("graphql-ws", "node", "graphql_client.cjs", (), ("ws", "graphql-ws"), 0.5),
        ClientSpec(
            "graphql-ws keepalive",
            "node",
            "graphql_client.cjs",
            ("--keepalive",),
            ("ws", "graphql-ws"),
            3.5,
        ),
        ClientSpec(
            "graphql-ws fixed-ids",
            "node",
            "graphql_client.cjs",
            ("--fixed-ids",),
            ("ws", "graphql-ws"),
            0.5,
        ),
        ClientSpec("mqtt.js", "node", "mqtt_client.cjs", (), ("mqtt",), 3.5),
        ClientSpec("mqtt.js v5", "node", "mqtt_client.cjs", ("--v5",), ("mqtt",), 3.5),
        ClientSpec(
            "mqtt.js fixed-ids", "node", "mqtt_client.cjs", ("--fixed-ids",), ("mqtt",), 3.5
        ),
        ClientSpec("paho-mqtt", "python", "paho_client.py", (), ("paho",), 3.5),
        ClientSpec("paho-mqtt v5", "python", "paho_client.py", ("--v5",), ("paho",), 3.5),
        ClientSpec("rpc-websockets", "node", "rpc_client.cjs", (), ("rpc-websockets",), 0.5),
        ClientSpec(
            "rpc-websockets int-ids",
            "node",
            "rpc_client.cjs",
            ("--int-ids",),
            ("rpc-websockets",),
            0.5,
        ),
        ClientSpec("stompjs", "node", "stomp_client.cjs", (), ("ws", "@stomp/stompjs"), 3.5),
        ClientSpec(
            "stompjs server-beats",
            "node",
            "stomp_client.cjs",
            ("--server-beats",),
            ("ws", "@stomp/stompjs"),
            3.5,
        ),
        ClientSpec(
            "websockets uuid-json", "python", "uuidjson_client.py", (), ("websockets",), 0.5
        ),
    )
}


@dataclass(frozen=True)
class Session:
    """One protocol x client x variation: what is recorded, then replayed."""

    server: str
    client: str
    primary: bool = True
    """False for a variation (another option of the same client): the tests record and
    replay the primary sessions; the measurement runs them all."""

    @property
    def id(self) -> str:
        return f"{self.server}/{self.client}"

    @property
    def server_spec(self) -> ServerSpec:
        return SERVERS[self.server]

    @property
    def client_spec(self) -> ClientSpec:
        return CLIENTS[self.client]

    def missing(self) -> str | None:
        return self.server_spec.missing() or self.client_spec.missing()


SESSIONS: tuple[Session, ...] = (
    Session("socketio", "python-socketio"),
    Session("socketio", "socket.io-client"),
    Session("socketio", "python-socketio binary", primary=False),
    Session("socketio", "socket.io-client binary", primary=False),
    Session("graphql-ws", "graphql-ws"),
    Session("graphql-ws", "graphql-ws keepalive", primary=False),
    Session("graphql-ws", "graphql-ws fixed-ids", primary=False),
    Session("mqtt", "mqtt.js"),
    Session("mqtt", "paho-mqtt"),
    Session("mqtt", "mqtt.js v5", primary=False),
    Session("mqtt", "mqtt.js fixed-ids", primary=False),
    Session("mqtt", "paho-mqtt v5", primary=False),
    Session("json-rpc", "rpc-websockets"),
    Session("json-rpc", "rpc-websockets int-ids", primary=False),
    Session("stomp", "stompjs"),
    # stomp-broker-js grants heart-beats one way only: each direction is a session.
    Session("stomp", "stompjs server-beats"),
    Session("uuid-json", "websockets uuid-json"),
)
PRIMARY: tuple[Session, ...] = tuple(s for s in SESSIONS if s.primary)


def session(session_id: str) -> Session:
    for s in SESSIONS:
        if s.id == session_id:
            return s
    raise KeyError(session_id)


# -- wstape as a process --------------------------------------------------------------------


class WstapeProcess(Process):
    """``python -m wstape record|replay ... --ready-file F``, ready once F holds the port."""

    def __init__(self, workdir: Path, command: str, *args: str | Path) -> None:
        self.ready_file = workdir / f"{command}-{time.monotonic_ns()}.port"
        argv = [sys.executable, "-m", "wstape", command, *map(str, args)]
        argv += ["--ready-file", str(self.ready_file)]
        super().__init__(argv, cwd=REPO, COLUMNS="200")
        self.port = 0

    def wait_ready(self, timeout: float = START_TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError, ValueError):
                self.port = int(self.ready_file.read_text().strip())
                return self.port
            if self.proc.poll() is not None:
                self.wait(5)
                raise RuntimeError(
                    f"wstape {self.argv[3]} exited with {self.proc.returncode} before "
                    f"listening:\n{self.output}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"wstape {self.argv[3]} never wrote its ready file")
            time.sleep(0.02)


def wstape_ls(cassette: Path) -> list[dict[str, Any]]:
    """``wstape ls --json CASSETTE``."""
    done = subprocess.run(
        [sys.executable, "-m", "wstape", "ls", "--json", str(cassette)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wstape ls exited with {done.returncode}:\n{done.stderr}")
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def make_confdir(path: Path) -> Path:
    """A mitmproxy confdir with its CA already made (so parallel recorders share it)."""
    from wstape.replay.tls import mint

    path.mkdir(parents=True, exist_ok=True)
    mint(["localhost"], path)
    return path


# -- the cycle ------------------------------------------------------------------------------


@dataclass
class Recording:
    session: Session
    cassette: Path
    live: ClientRun
    """The client through the recording proxy, in front of the real server."""
    recorder_exit: int | None
    connections: list[dict[str, Any]] = field(default_factory=list)
    """``wstape ls --json`` of the cassette."""
    recorder_output: str = ""

    @property
    def ok(self) -> bool:
        return self.live.ok and self.recorder_exit == 0 and bool(self.connections)

    @property
    def counts(self) -> tuple[int, int, int]:
        """(connections, client messages, server messages)."""
        c = sum(row["messages"]["client"] for row in self.connections)
        s = sum(row["messages"]["server"] for row in self.connections)
        return len(self.connections), c, s


@dataclass
class Replay:
    session: Session
    cassette: Path
    variant: str
    client: ClientRun
    exit_code: int | None
    """None: it did not exit by itself within the wait (then it was stopped with SIGTERM,
    which still writes the report: ``stopped_exit``)."""
    report: dict[str, Any] | None
    output: str = ""
    stopped_exit: int | None = None

    @property
    def passed(self) -> bool | None:
        return None if self.report is None else bool(self.report.get("passed"))

    def violations(self) -> dict[str, int]:
        """Violations by rule (``RULE`` for errors, ``RULE (warn)`` otherwise)."""
        counts: dict[str, int] = {}
        for v in (self.report or {}).get("violations", []):
            key = v["rule"] if v["severity"] == "error" else f"{v['rule']} ({v['severity']})"
            counts[key] = counts.get(key, 0) + 1
        return counts

    @property
    def ok(self) -> bool:
        """The client completed and the replay exited 0."""
        return self.client.ok and self.exit_code == 0


def record_session(
    s: Session, workdir: Path, confdir: Path, *, variant: str = "normal"
) -> Recording:
    """Real server -> ``wstape record --mode reverse:ws://127.0.0.1:PORT --port 0``
    -> the client through it -> SIGINT to the recorder (and wait for its exit) -> server
    stopped -> ``wstape ls --json``."""
    workdir.mkdir(parents=True, exist_ok=True)
    cassette = workdir / "cassette.msgpack"
    with start_server(s.server, workdir) as server:
        rec = WstapeProcess(
            workdir,
            "record",
            "-o", cassette,
            "--overwrite",
            "--mode", f"reverse:ws://127.0.0.1:{server.port}",
            "--port", "0",
            "--confdir", confdir,
        )  # fmt: skip
        try:
            port = rec.wait_ready()
            live = run_client(s.client_spec, s.server_spec.url_for(port), variant=variant)
        finally:
            code = rec.stop(signal.SIGINT, timeout=20)
    recording = Recording(s, cassette, live, code, recorder_output=rec.output)
    if cassette.exists():
        recording.connections = wstape_ls(cassette)
    return recording


def replay_session(
    s: Session,
    cassette: Path,
    workdir: Path,
    *,
    variant: str = "normal",
    replay_args: Sequence[str] = (),
    wait: float = 15.0,
) -> Replay:
    """``wstape replay CASSETTE --port 0 --ready-file F --speed 0 --report R`` (plus
    ``replay_args``) -> the client against it -> the replay's own exit -> the report.

    Without ``--loop`` the replay exits once every recorded connection was played and its
    client has gone; a recorded connection no client reached (a refused handshake, say)
    keeps it serving, so after ``wait`` s more it is stopped with SIGTERM (its report is
    still written) and ``exit_code`` is None."""
    workdir.mkdir(parents=True, exist_ok=True)
    report = workdir / f"report-{variant}-{time.monotonic_ns()}.json"
    rep = WstapeProcess(
        workdir, "replay", cassette, "--port", "0", "--speed", "0", "--report", report,
        *replay_args,
    )  # fmt: skip
    try:
        port = rep.wait_ready()
        client = run_client(s.client_spec, s.server_spec.url_for(port), variant=variant)
        code = rep.wait(wait, kill=False)
        stopped = rep.stop(signal.SIGTERM, timeout=15) if code is None else None
    except BaseException:
        rep.kill()
        raise
    data: dict[str, Any] | None = None
    if report.exists():
        data = json.loads(report.read_text(encoding="utf-8"))
    return Replay(s, cassette, variant, client, code, data, rep.output, stopped)


@dataclass
class Cycle:
    session: Session
    recording: Recording
    replay: Replay | None
    """None when nothing was recorded."""


def run_cycle(s: Session, workdir: Path, confdir: Path, *, variant: str = "normal") -> Cycle:
    """:func:`record_session` then :func:`replay_session` of its cassette, the same client
    (``variant`` for the replay) against the replay."""
    recording = record_session(s, workdir, confdir)
    replay = None
    if recording.cassette.exists() and recording.connections:
        replay = replay_session(s, recording.cassette, workdir, variant=variant)
    return Cycle(s, recording, replay)


def run_cycles(
    sessions: Sequence[Session], workdir: Path, *, workers: int = 4, variant: str = "normal"
) -> dict[str, Cycle | BaseException]:
    """:func:`run_cycle` for each session, ``workers`` at a time; keyed by session id. A
    harness failure is returned as the exception, so one bad session does not hide the
    others."""
    confdir = make_confdir(workdir / "mitmproxy")

    def one(s: Session) -> Cycle | BaseException:
        try:
            return run_cycle(s, workdir / s.id.replace("/", "_").replace(" ", "-"), confdir,
                             variant=variant)  # fmt: skip
        except Exception as e:
            return e

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, sessions))
    return {s.id: r for s, r in zip(sessions, results, strict=True)}
