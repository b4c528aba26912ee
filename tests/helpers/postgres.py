"""A private PostgreSQL server on 127.0.0.1 for tests: initdb in a temp dir, pg_ctl start, stop at the end.

PostgreSQL refuses to run as root; as root the server runs as the ``postgres`` system user (Debian's
package creates it). Returns None with the reason when no server can be started here.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from pathlib import Path


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """``root``: a fresh directory the server user can reach (as root: made under /tmp, since pytest's
    own temp dirs are private to root)."""

    def __init__(self, root: Path | None = None) -> None:
        import tempfile

        self.root = root or Path(tempfile.mkdtemp(prefix="kwsnas-pg-"))
        self.port = _free_port()
        self.data, self.sock = self.root / "data", self.root / "sock"
        self.prefix: list[str] = []

    def start(self) -> str | None:
        """Start the server; returns None on success, else why it could not."""
        initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
        if not (initdb and pg_ctl):
            return "PostgreSQL is not installed (Debian: apt-get install postgresql)"
        self.root.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            try:
                import pwd

                pw = pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no 'postgres' user to run the server as"
            if not runuser:
                return "running as root without runuser"
            os.chmod(self.root, 0o755)  # mkdtemp makes it 0700
            for p in (self.root, self.sock):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            self.prefix = [runuser, "-u", "postgres", "--"]
        self.pg_ctl = pg_ctl
        r = subprocess.run([*self.prefix, initdb, "-D", str(self.data), "-U", "kwsnas", "--auth=trust", "-E", "UTF8"],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            return f"initdb failed: {r.stderr.strip()[-300:]}"
        opts = f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off"
        r = subprocess.run([*self.prefix, pg_ctl, "-D", str(self.data), "-o", opts, "-l",
                            str(self.root / "log.txt"), "-w", "-t", "60", "start"], capture_output=True, text=True,
                           timeout=90)
        if r.returncode != 0:
            return f"pg_ctl start failed: {r.stderr.strip()[-300:]}"
        return None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://kwsnas@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run([*self.prefix, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)
