"""Private redis-server processes for security tests: one with a password, one over TLS only."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from broker.local_stack import free_port, redis_answers


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway certificate authority and a server certificate for 127.0.0.1 signed by it."""

    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Create a CA and a server certificate (SAN IP:127.0.0.1, localhost) with ``openssl``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FileNotFoundError("the openssl command is not installed")
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    extensions = directory / "server.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                          "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    for command in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", ca_key,
         "-out", ca, "-subj", "/CN=Conveyor test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-days", "1", "-out", cert, "-extfile", extensions],
    ):
        subprocess.run([openssl, *map(str, command)], check=True, capture_output=True, timeout=60)
    return TlsFiles(ca=ca, cert=cert, key=key)


@contextlib.contextmanager
def redis_server(args: list[str], url: str) -> Iterator[str]:
    """A redis-server started with ``args``, ready once it answers PING at ``url``.

    Persistence is off and the data directory is temporary; the server is stopped by pid.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed")
    with tempfile.TemporaryDirectory(prefix="conveyor-redis-") as workdir:
        log = Path(workdir) / "redis.log"
        proc = subprocess.Popen(
            [binary, *args, "--bind", "127.0.0.1", "--dir", workdir, "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--logfile", str(log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while not redis_answers(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    text = log.read_text(errors="replace") if log.exists() else ""
                    raise RuntimeError(f"the private redis-server did not start:\n{text[-2000:]}")
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


def password_redis(password: str) -> contextlib.AbstractContextManager[str]:
    """A redis-server that requires ``password``; yields ``redis://:<password>@127.0.0.1:<port>/0``."""
    port = free_port()
    return redis_server(["--port", str(port), "--requirepass", password],
                        f"redis://:{password}@127.0.0.1:{port}/0")


@contextlib.contextmanager
def tls_redis(tls: TlsFiles) -> Iterator[tuple[str, int]]:
    """A redis-server speaking TLS only (no plain port); yields its bare ``rediss://`` URL and port.

    Clients need not present a certificate; they must trust ``tls.ca`` to verify the server.
    """
    port = free_port()
    args = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls.cert),
            "--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.ca),
            "--tls-auth-clients", "no"]
    checked = f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={tls.ca}"
    with redis_server(args, checked):
        yield f"rediss://127.0.0.1:{port}/0", port
