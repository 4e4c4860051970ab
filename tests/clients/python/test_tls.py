"""The real Python clients over TLS, each on a named database with its own token.

Starts its OWN skylite server (binary from SKYLITE_BIN, default target/release/skylite) with
--tls-cert/--tls-key on a free port, using a self-signed certificate for localhost/127.0.0.1 made
here with `openssl req -x509` in a temp folder. Auth is on: an admin token minted with
`skylite token create --admin` creates the database through the admin API over https, and a
token minted with `--db NAME` is what the clients use.

Each client runs in a child process (tls_client.py) with SSL_CERT_FILE pointing at the
certificate, the way a user trusts a private CA (neither client has an option for it):
- libsql-client (sync and async) over https://HOST/db/NAME/, wss://HOST/db/NAME and
  libsql://HOST/db/NAME (which this client maps to wss://): aiohttp builds its TLS context with
  ssl.create_default_context(), and OpenSSL reads SSL_CERT_FILE;
- the SQLAlchemy app (sqlalchemy-libsql -> libsql-experimental) over
  sqlite+libsql://localhost:PORT/db/NAME?secure=true: libsql-experimental 0.0.55 verifies with
  rustls 0.22 and the platform's roots (hyper-rustls 0.25 native roots = rustls-native-certs
  0.7.1; no bundled webpki-roots), and rustls-native-certs reads SSL_CERT_FILE, when set,
  instead of the system store.
rustls-webpki refuses a server certificate marked CA:TRUE (CaUsedAsEndEntity), and plain
`openssl req -x509` marks it so, hence `-addext basicConstraints=critical,CA:FALSE` below
(README's TLS section shows the same command).
Skipped, saying why, only when openssl is missing.
"""
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

import tokens

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
OPENSSL = shutil.which("openssl")

pytestmark = pytest.mark.skipif(
    OPENSSL is None,
    reason="openssl is not installed: cannot make a self-signed test certificate, "
    "so the Python TLS client tests are skipped",
)


@dataclass
class TlsServer:
    port: int
    cert: Path
    data_dir: Path
    db: str
    db_token: str
    admin_token: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def https(self, method, path, body=None, token=None, host="localhost"):
        """A request over https with urllib, trusting the test certificate."""
        ctx = ssl.create_default_context(cafile=str(self.cert))
        req = urllib.request.Request(
            f"https://{host}:{self.port}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"content-type": "application/json",
                     **({"authorization": f"Bearer {token}"} if token else {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
                return r.status, parse(r.read())
        except urllib.error.HTTPError as e:
            return e.code, parse(e.read())


def parse(body: bytes):
    """JSON if the body is JSON (API answers), the text otherwise (`/health`)."""
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")


def make_cert(folder: Path) -> Path:
    cert, key = folder / "cert.pem", folder / "key.pem"
    out = subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:FALSE"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, f"openssl req failed: {out.stderr}"
    return cert


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    binary = os.environ.get("SKYLITE_BIN") or str(ROOT / "target" / "release" / "skylite")
    if not Path(binary).is_file():
        pytest.fail(f"no skylite binary at {binary} (cargo build --release -p skylite, or set SKYLITE_BIN)")
    folder = tmp_path_factory.mktemp("tls")
    cert = make_cert(folder)
    data = folder / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = folder / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data),
             "--tls-cert", str(cert), "--tls-key", str(folder / "key.pem")],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        server = TlsServer(port, cert, data, "", "", "", log_path)
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"skylite exited early:\n{server.log()}")
            try:
                if server.https("GET", "/health", host="127.0.0.1")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f"skylite did not become healthy over https:\n{server.log()}")
            time.sleep(0.1)
        # As a user would: an admin token creates the database, then a token for it alone.
        server.admin_token = tokens.mint("--admin", data_dir=data)
        server.db = "tls-" + uuid.uuid4().hex[:10]
        status, body = server.https("POST", "/v1/admin/databases", {"name": server.db},
                                    token=server.admin_token)
        assert status == 201, body
        assert body == {"name": server.db, "created": True}
        server.db_token = tokens.mint("--db", server.db, data_dir=data)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_client(server: TlsServer, *args: str, trust: bool = True):
    """Runs tls_client.py with the database's token; SSL_CERT_FILE names the certificate when
    `trust`, and is unset otherwise. Returns the CompletedProcess."""
    env = {**os.environ, "SKYLITE_TLS_TOKEN": server.db_token}
    env.pop("SSL_CERT_FILE", None)
    env.pop("SSL_CERT_DIR", None)
    if trust:
        env["SSL_CERT_FILE"] = str(server.cert)
    return subprocess.run([sys.executable, str(HERE / "tls_client.py"), *args], env=env,
                          capture_output=True, text=True, timeout=120, cwd=HERE)


def result(server: TlsServer, proc) -> dict:
    assert proc.returncode == 0, (
        f"client failed:\n{proc.stderr}\n--- server log ---\n{server.log()[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rows_in(server: TlsServer, table: str, db_path: str = "", token=None) -> list:
    """`SELECT v FROM table` over https with urllib (Hrana v2 pipeline); [] if no such table."""
    status, body = server.https("POST", f"{db_path}/v2/pipeline", {"requests": [
        {"type": "execute", "stmt": {"sql": f"SELECT name FROM sqlite_schema WHERE name = '{table}'"}},
        {"type": "execute", "stmt": {"sql": f"SELECT v FROM {table} ORDER BY id"}},
        {"type": "close"}]}, token=token or server.admin_token)
    assert status == 200, body
    if not body["results"][0]["response"]["result"]["rows"]:
        return []
    return [r[0]["value"] for r in body["results"][1]["response"]["result"]["rows"]]


def test_the_server_speaks_tls_only(tls):
    plain = re.sub(r"\x1b\[[0-9;]*m", "", tls.log())
    assert f"listening on https://127.0.0.1:{tls.port} (wss://127.0.0.1:{tls.port})" in plain
    # Plain HTTP to the TLS port gets a TLS alert back, which is no HTTP response.
    with pytest.raises((OSError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://127.0.0.1:{tls.port}/health", timeout=10)
    status, info = tls.https("GET", f"/v1/admin/databases/{tls.db}", token=tls.admin_token)
    assert status == 200 and info["name"] == tls.db, info


SCHEMES = {
    "https": lambda host, port, db: f"https://{host}:{port}/db/{db}/",
    "wss": lambda host, port, db: f"wss://{host}:{port}/db/{db}",
    "libsql": lambda host, port, db: f"libsql://{host}:{port}/db/{db}",
}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_libsql_client_on_a_named_database_over_tls(tls, scheme, mode):
    for host in ("localhost", "127.0.0.1"):
        table = f"t_{scheme}_{mode}_{host.replace('.', '_')}"
        url = SCHEMES[scheme](host, tls.port, tls.db)
        out = result(tls, run_client(tls, "libsql-client", mode, url, table))
        expected = ["one", "two", "three"] + (["four"] if scheme != "https" else [])
        assert out == {"batch_count": 3, "values": expected}, url
        # The rows are in the named database, not in `default`.
        assert rows_in(tls, table, f"/db/{tls.db}") == expected
        assert rows_in(tls, table) == []


@pytest.mark.parametrize("scheme", ["https", "wss"])
def test_libsql_client_refuses_the_certificate_without_ssl_cert_file(tls, scheme):
    url = SCHEMES[scheme]("localhost", tls.port, tls.db)
    proc = run_client(tls, "libsql-client", "sync", url, "t_untrusted", trust=False)
    assert proc.returncode != 0, f"{scheme}: an untrusted certificate was accepted"
    assert "CERTIFICATE_VERIFY_FAILED" in proc.stderr, proc.stderr[-2000:]


def test_libsql_client_needs_the_database_token_over_tls(tls):
    other = tokens.mint("--db", "default", data_dir=tls.data_dir)
    env_token, tls.db_token = tls.db_token, other
    try:
        proc = run_client(tls, "libsql-client", "sync", SCHEMES["wss"]("localhost", tls.port, tls.db), "t_x")
    finally:
        tls.db_token = env_token
    assert proc.returncode != 0
    assert "AUTH_DATABASE_FORBIDDEN" in proc.stderr and tls.db in proc.stderr, proc.stderr[-2000:]


def test_sqlalchemy_app_on_a_named_database_over_tls(tls):
    out = result(tls, run_client(tls, "sqlalchemy", f"https://localhost:{tls.port}/db/{tls.db}", "sa_"))
    assert out["engine_url"] == f"sqlite+libsql://localhost:{tls.port}/db/{tls.db}?secure=true"
    assert out["titles"] == ["The Dispossessed", "The Lathe of Heaven"]
    assert out["counts"] == [1, 2]
    status, info = tls.https("GET", f"/v1/admin/databases/{tls.db}", token=tls.admin_token)
    assert status == 200 and info["tables"] >= 2, info


def test_sqlalchemy_app_refuses_the_certificate_without_ssl_cert_file(tls):
    proc = run_client(tls, "sqlalchemy", f"https://localhost:{tls.port}/db/{tls.db}", "sa_untrusted_",
                      trust=False)
    assert proc.returncode != 0, "libsql-experimental accepted an untrusted certificate"
    assert "certificate" in proc.stderr.lower(), proc.stderr[-2000:]
