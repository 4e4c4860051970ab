#!/usr/bin/env python3
"""The abuse driver of scripts/abuse.sh: misbehaves against a running skylite server (auth on,
loopback only, bounded in time) while a well-behaved client writes, and checks that the
well-behaved client never notices.

Python 3 standard library only. Started by scripts/abuse.sh, which builds and starts the server
and mints the tokens; run by hand as

    python3 scripts/abuse.py --port PORT --pid PID --data-dir DIR --seconds 60 \
        --txn-timeout 2 --statement-timeout 3 --max-body-size 1048576

with the tokens in the environment (ABUSE_RW_TOKEN, ABUSE_RO_TOKEN, ABUSE_OTHER_TOKEN,
ABUSE_REVOKED_TOKEN).

Checks (a violation of any makes the exit status 1):
  good_writes     every write of the well-behaved client succeeds within txn-timeout + 1 s
  memory          the server's resident memory (VmRSS) stays under --rss-limit-mib
  alive           the server process never exits
  responsive      after the run the server answers, and every acknowledged write is there
  no_token        every SQL endpoint answers 401 without a token, spoofed `Upgrade` or not
  db_existence    an upgrade without a token does not tell an existing database from a missing one
  bad_tokens      garbage, forged, `alg: none`, HS256, revoked and other-database tokens never
                  get a 2xx
  read_only       a read-only token never writes (DML, DDL, REINDEX, ANALYZE, PRAGMA optimize,
                  process-wide pragmas even through `describe`, BEGIN IMMEDIATE, ...)
  malformed       malformed and oversized bodies get a 4xx (oversized: 413), never a 5xx
  runaway         a runaway statement ends with an error within statement-timeout + 2 s
  server_errors   no abuse gets a 5xx where a 4xx is due
Informational (printed; a check only with ABUSE_HYGIENE_LIMIT=SECONDS): how long idle sockets,
slowloris headers and bodies, and WebSockets without `hello` stay open.

Abuses that take the write lock (stalled cursors after BEGIN IMMEDIATE, abandoned
transactions, WebSockets that never read inside a transaction) run one at a time, spaced by
txn-timeout + 1.5 s: with a FIFO write lock the well-behaved client is then never behind more
than one abusive holder, so a write slower than txn-timeout + 1 s is the server's fault, not
the driver's.

Groups (ABUSE_GROUPS=comma list to run only some, ABUSE_SKIP=comma list to leave some out):
  upgrades tokens readonly malformed runaway stalled abandoned streams noread memory
  idle slowloris nohello; optional (not in the default set): runaway_write
"""

import argparse
import base64
import hashlib
import hmac
import http.client as httplib
import json
import os
import random
import socket
import struct
import sys
import threading
import time

DEFAULT_GROUPS = [
    "upgrades", "tokens", "readonly", "malformed", "runaway", "stalled", "abandoned",
    "streams", "noread", "memory", "idle", "slowloris", "nohello",
]
SQL_PATHS = [
    "/", "/v1/execute", "/v1/batch", "/v2/pipeline", "/v3/pipeline", "/v3/cursor",
    "/v3-protobuf/pipeline", "/v3-protobuf/cursor",
]
RUNAWAY_SQL = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "
               "SELECT count(*) FROM c")
# Enough rows, each big enough, that a result never fits in socket buffers.
BIG_SELECT = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 1000000) "
              "SELECT x, printf('%.2000c', 'x') FROM c")


def log(msg):
    sys.stdout.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stdout.flush()


class Checks:
    """Violations and facts, from every thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.violations = {}   # check -> [count, {key: first message}]
        self.passes = {}       # check -> count of observations that held
        self.info = {}         # name -> list of values

    def ok(self, check):
        with self.lock:
            self.passes[check] = self.passes.get(check, 0) + 1

    def fail(self, check, msg, key=None):
        """Records a violation; the first message of each distinct `key` (default: the
        message) is kept, up to 12 per check."""
        with self.lock:
            entry = self.violations.setdefault(check, [0, {}])
            entry[0] += 1
            key = msg if key is None else key
            if key not in entry[1] and len(entry[1]) < 64:
                entry[1][key] = msg
                log(f"VIOLATION {check}: {msg}")

    def note(self, name, value):
        with self.lock:
            self.info.setdefault(name, []).append(value)


class Ctx:
    def __init__(self, args):
        self.host = "127.0.0.1"
        self.port = args.port
        self.pid = args.pid
        self.db = args.db
        self.txn_timeout = args.txn_timeout
        self.stmt_timeout = args.statement_timeout
        self.max_body = args.max_body_size
        self.rss_limit = args.rss_limit_mib * 1024 * 1024
        self.deadline = time.monotonic() + args.seconds
        self.stop = threading.Event()
        self.checks = Checks()
        self.rw = os.environ["ABUSE_RW_TOKEN"]
        self.ro = os.environ["ABUSE_RO_TOKEN"]
        self.other = os.environ["ABUSE_OTHER_TOKEN"]
        self.revoked = os.environ["ABUSE_REVOKED_TOKEN"]
        self.public_key_pem = b""
        pub = os.path.join(args.data_dir, ".skylite", "jwt.pub")
        if os.path.exists(pub):
            with open(pub, "rb") as f:
                self.public_key_pem = f.read()
        # One abusive write-lock holder at a time (see the module doc).
        self.lock_gate = threading.Semaphore(1)
        self.sockets = []
        self.sockets_lock = threading.Lock()

    def running(self):
        return not self.stop.is_set() and time.monotonic() < self.deadline

    def sleep(self, seconds):
        """Sleeps, waking early when the run ends. False if it ended."""
        end = min(time.monotonic() + seconds, self.deadline)
        while time.monotonic() < end:
            if self.stop.wait(min(0.2, max(0.0, end - time.monotonic()))):
                return False
        return self.running()

    def track(self, sock):
        with self.sockets_lock:
            self.sockets.append(sock)
        return sock

    def close_all(self):
        with self.sockets_lock:
            for s in self.sockets:
                try:
                    s.close()
                except OSError:
                    pass
            self.sockets.clear()

    def gate_hold(self):
        """Takes the write-lock abuse slot for txn-timeout + 1.5 s from now (released by a
        timer, whatever the abuse does meanwhile). False if the run ends first."""
        while self.running():
            if self.lock_gate.acquire(timeout=0.2):
                t = threading.Timer(self.txn_timeout + 1.5, self.lock_gate.release)
                t.daemon = True
                t.start()
                return True
        return False


# ---- HTTP and Hrana helpers ----------------------------------------------------------------

def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def http(ctx, method, path, body=None, headers=None, timeout=15):
    """One request on a fresh connection: (status, body bytes). Raises OSError and
    http.client exceptions on transport failures."""
    conn = httplib.HTTPConnection(ctx.host, ctx.port, timeout=timeout)
    try:
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data
    finally:
        conn.close()


def pipeline_body(stmts, close=True, baton=None):
    reqs = [{"type": "execute", "stmt": {"sql": s}} for s in stmts]
    if close:
        reqs.append({"type": "close"})
    return json.dumps({"baton": baton, "requests": reqs}).encode()


def results(body):
    """The per-request outcomes of a pipeline response: list of (ok, payload)."""
    doc = json.loads(body)
    out = []
    for r in doc.get("results", []):
        if r.get("type") == "ok":
            out.append((True, r.get("response")))
        else:
            out.append((False, r.get("error")))
    return doc, out


def body_for(path, sql):
    """A body that runs `sql` once on `path` (JSON endpoints; Protobuf ones get JSON too,
    which they must refuse with a 4xx)."""
    if path == "/":
        return json.dumps({"statements": [sql]}).encode()
    if path == "/v1/execute":
        return json.dumps({"stmt": {"sql": sql}}).encode()
    if path in ("/v1/batch", "/v3/cursor", "/v3-protobuf/cursor"):
        return json.dumps({"baton": None, "batch": {"steps": [{"stmt": {"sql": sql}}]}}).encode()
    return pipeline_body([sql])


# ---- a minimal WebSocket client ----------------------------------------------------------------

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WsClosed(Exception):
    pass


class Ws:
    def __init__(self, ctx, path="/", proto="hrana3", timeout=10, extra_headers=""):
        self.ctx = ctx
        self.sock = ctx.track(socket.create_connection((ctx.host, ctx.port), timeout=timeout))
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {path} HTTP/1.1\r\nHost: {ctx.host}:{ctx.port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Protocol: {proto}\r\n{extra_headers}\r\n")
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise WsClosed("closed during the handshake")
            head += chunk
            if len(head) > 65536:
                raise WsClosed("handshake response too long")
        head, self.buf = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        if self.status != 101:
            raise WsClosed(f"handshake answered {lines[0]}")
        want = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        accept = [l.split(":", 1)[1].strip() for l in lines[1:]
                  if l.lower().startswith("sec-websocket-accept:")]
        if accept != [want]:
            raise WsClosed(f"bad Sec-WebSocket-Accept {accept}")

    def send(self, payload, opcode=1):
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        if n > 4096:
            # Big frames get the all-zero masking key (valid: the key is chosen by the client),
            # so the driver spends no CPU masking megabytes that the server has to share.
            mask, masked = b"\0\0\0\0", payload
        else:
            mask = os.urandom(4)
            reps = (mask * (n // 4 + 1))[:n]
            masked = (int.from_bytes(payload, "big") ^ int.from_bytes(reps, "big")).to_bytes(n, "big") if n else b""
        self.sock.sendall(head + mask + masked)

    def send_json(self, obj):
        self.send(json.dumps(obj))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise WsClosed("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self, timeout=10):
        """The next data message as (opcode, payload); WsClosed on a close frame or EOF."""
        self.sock.settimeout(timeout)
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            if b1 & 0x80:
                mask = self._read(4)
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(self._read(n)))
            else:
                data = self._read(n)
            if opcode == 8:
                code = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else None
                raise WsClosed(f"close frame {code} {data[2:].decode('utf-8', 'replace')}")
            if opcode == 9:
                self.send(data, opcode=10)
                continue
            if opcode in (1, 2, 0):
                return opcode, data

    def recv_json(self, timeout=10):
        return json.loads(self.recv(timeout)[1])

    def request(self, request_id, request, timeout=10):
        """Sends a request and waits for its response (skipping others)."""
        self.send_json({"type": "request", "request_id": request_id, "request": request})
        end = time.monotonic() + timeout
        while True:
            msg = self.recv_json(max(0.1, end - time.monotonic()))
            if msg.get("request_id") == request_id:
                return msg

    def hello(self, jwt):
        self.send_json({"type": "hello", "jwt": jwt})

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def ws_session(ctx, token, stream_id=1):
    """A WebSocket with a `hello` accepted and one stream open."""
    ws = Ws(ctx, f"/db/{ctx.db}")
    ws.hello(token)
    msg = ws.request(1, {"type": "open_stream", "stream_id": stream_id})
    if msg.get("type") != "response_ok":
        raise WsClosed(f"open_stream: {msg}")
    return ws


# ---- the well-behaved client, the memory watch --------------------------------------------

class Good:
    def __init__(self):
        self.writes = 0
        self.worst = 0.0
        self.latencies = []


def good_writer(ctx, good):
    bound = ctx.txn_timeout + 1.0
    n = 0
    while ctx.running():
        n += 1
        body = json.dumps({"baton": None, "requests": [
            {"type": "execute", "stmt": {"sql": "INSERT INTO good(x) VALUES (?)",
                                         "args": [{"type": "integer", "value": str(n)}]}},
            {"type": "close"}]}).encode()
        start = time.monotonic()
        try:
            status, data = http(ctx, "POST", f"/db/{ctx.db}/v2/pipeline", body,
                                bearer(ctx.rw), timeout=bound + 10)
            took = time.monotonic() - start
            if status != 200:
                ctx.checks.fail("good_writes", f"write {n}: HTTP {status} {data[:200]!r}", key=status)
            else:
                _, outs = results(data)
                if not outs or not outs[0][0]:
                    err = outs[0][1] if outs else None
                    ctx.checks.fail("good_writes", f"write {n}: {outs[:1]}",
                                    key=(err or {}).get("code") if isinstance(err, dict) else "no result")
                elif took > bound:
                    ctx.checks.fail("good_writes", f"write {n} took {took:.2f} s (bound {bound:.1f} s)",
                                    key="slow")
                else:
                    ctx.checks.ok("good_writes")
                    good.writes += 1
            good.worst = max(good.worst, took)
            good.latencies.append(took)
        except (OSError, httplib.HTTPException) as e:
            took = time.monotonic() - start
            good.worst = max(good.worst, took)
            ctx.checks.fail("good_writes", f"write {n}: {type(e).__name__} {e} after {took:.2f} s",
                            key=type(e).__name__)
            if not ctx.sleep(0.2):
                break
        ctx.sleep(0.02)


def rss_of(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return 0


def process_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False


class Mem:
    peak = 0


def memory_watch(ctx, mem):
    while not ctx.stop.is_set():
        rss = rss_of(ctx.pid)
        if rss is None or not process_alive(ctx.pid):
            ctx.checks.fail("alive", "the server process exited")
            ctx.stop.set()
            return
        if rss > mem.peak:
            mem.peak = rss
        if rss > ctx.rss_limit:
            ctx.checks.fail("memory", f"VmRSS {rss >> 20} MiB over the bound {ctx.rss_limit >> 20} MiB",
                            key="over")
        if time.monotonic() > ctx.deadline + 60:
            return
        time.sleep(0.1)


# ---- abuses ---------------------------------------------------------------------------------

def expect_refused(ctx, check, what, status, data, allowed=(401, 403)):
    if 200 <= status < 300 or status == 101:
        ctx.checks.fail(check, f"{what}: HTTP {status} {data[:160]!r}", key=what)
    elif status >= 500:
        ctx.checks.fail("server_errors", f"{what}: HTTP {status} {data[:160]!r}", key=what)
    elif status not in allowed:
        if check == "no_token":
            # Without a token the answer is 401 before anything else (400, 404, 405).
            ctx.checks.fail(check, f"{what}: HTTP {status} (expected 401) {data[:120]!r}", key=what)
        else:
            ctx.checks.note(f"{check}: other statuses", status)
            ctx.checks.ok(check)
    else:
        ctx.checks.ok(check)


def abuse_upgrades(ctx):
    """SQL endpoints with `Upgrade: websocket` and no token; the upgrade as an existence
    oracle."""
    spoof = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
             "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}
    upgrade_only = {"Upgrade": "websocket"}
    while ctx.running():
        for path in SQL_PATHS:
            for prefix, extra in ((f"/db/{ctx.db}", {}), ("", {"x-namespace": ctx.db}), ("", {})):
                for headers in (spoof, upgrade_only, {}):
                    h = dict(headers)
                    h.update(extra)
                    try:
                        status, data = http(ctx, "POST", prefix + path,
                                            body_for(path, "SELECT count(*) FROM good"), h)
                    except (OSError, httplib.HTTPException) as e:
                        ctx.checks.note("upgrades: transport errors", repr(e)[:80])
                        continue
                    spoofed = "Upgrade" in h
                    what = (f"POST {prefix or '(x-namespace)' if 'x-namespace' in h else prefix}{path} "
                            f"without a token{', Upgrade: websocket' if spoofed else ''}")
                    expect_refused(ctx, "no_token", what, status, data, allowed=(401,))
            if not ctx.sleep(0.05):
                return
        # GET upgrade without a token: an existing and a missing database must look the same.
        seen = {}
        for name in (ctx.db, "no-such-database-here"):
            try:
                ws = Ws(ctx, f"/db/{name}")
                seen[name] = ws.status
                ws.close()
            except WsClosed as e:
                seen[name] = str(e)[:40]
            except OSError as e:
                seen[name] = type(e).__name__
        if len(set(seen.values())) > 1:
            ctx.checks.fail("db_existence", f"an upgrade without a token tells databases apart: {seen}",
                            key="upgrade")
        else:
            ctx.checks.ok("db_existence")


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def forged_tokens(ctx):
    h, p, s = ctx.ro.split(".")
    payload = json.loads(b64url_decode(p))
    out = {}
    # The read-only token turned read-write, signature kept.
    up = dict(payload)
    up["a"] = "rw"
    if isinstance(up.get("p"), dict) and "ro" in up["p"]:
        up["p"] = {"rw": up["p"]["ro"]}
    out["ro->rw, old signature"] = f"{h}.{b64url(json.dumps(up).encode())}.{s}"
    adm = dict(payload)
    adm["skylite_admin"] = True
    out["admin claim added"] = f"{h}.{b64url(json.dumps(adm).encode())}.{s}"
    none_h = b64url(b'{"alg":"none","typ":"JWT"}')
    out["alg none"] = f"{none_h}.{b64url(json.dumps(up).encode())}."
    hs_h = b64url(b'{"alg":"HS256","typ":"JWT"}')
    body = f"{hs_h}.{b64url(json.dumps(up).encode())}"
    sig = hmac.new(ctx.public_key_pem, body.encode(), hashlib.sha256).digest()
    out["HS256 with the public key"] = f"{body}.{b64url(sig)}"
    out["garbage"] = "not-a-token"
    out["truncated"] = ctx.rw[:-10]
    out["signature of another token"] = f"{h}.{p}.{ctx.rw.split('.')[2]}"
    out["revoked"] = ctx.revoked
    out["other database"] = ctx.other
    return out


def abuse_tokens(ctx):
    tokens = forged_tokens(ctx)
    while ctx.running():
        for name, token in tokens.items():
            for path in ("/v2/pipeline", "/v3/cursor", "/", "/v1/execute"):
                sql = "INSERT INTO ro_victim VALUES (1)" if "rw" in name else "SELECT count(*) FROM good"
                try:
                    status, data = http(ctx, "POST", f"/db/{ctx.db}{path}", body_for(path, sql),
                                        bearer(token))
                except (OSError, httplib.HTTPException) as e:
                    ctx.checks.note("tokens: transport errors", repr(e)[:80])
                    continue
                expect_refused(ctx, "bad_tokens", f"{name} on {path}", status, data)
            # The same over WebSocket: hello must be refused.
            try:
                ws = Ws(ctx, f"/db/{ctx.db}")
                ws.hello(token)
                msg = ws.request(2, {"type": "open_stream", "stream_id": 1}, timeout=5)
                if msg.get("type") == "response_ok":
                    # open_stream may be answered before the stream is used; a query must fail.
                    q = ws.request(3, {"type": "execute", "stream_id": 1,
                                       "stmt": {"sql": "SELECT count(*) FROM good"}}, timeout=5)
                    if q.get("type") == "response_ok":
                        ctx.checks.fail("bad_tokens", f"{name} over WebSocket read rows")
                    else:
                        ctx.checks.ok("bad_tokens")
                else:
                    ctx.checks.ok("bad_tokens")
                ws.close()
            except (WsClosed, OSError, ValueError):
                ctx.checks.ok("bad_tokens")
            if not ctx.sleep(0.05):
                return


READ_ONLY_WRITES = [
    "INSERT INTO ro_victim VALUES (1)",
    "UPDATE ro_victim SET x = x + 1",
    "DELETE FROM ro_victim",
    "INSERT INTO ro_victim VALUES (2) RETURNING x",
    "WITH c AS (SELECT 3) INSERT INTO ro_victim SELECT * FROM c",
    "CREATE TABLE ro_made(x)",
    "DROP TABLE IF EXISTS ro_victim",
    "CREATE INDEX ro_idx ON ro_victim(x)",
    "REINDEX",
    "ANALYZE",
    "PRAGMA optimize",
    "PRAGMA user_version = 7",
    "VACUUM",
    "BEGIN IMMEDIATE",
    "PRAGMA hard_heap_limit = 100000",
    "PRAGMA soft_heap_limit = 100000",
    "PRAGMA threads = 8",
]
PROCESS_WIDE = ["PRAGMA hard_heap_limit = 100000", "PRAGMA soft_heap_limit = 100000",
                "PRAGMA threads = 8"]


def abuse_readonly(ctx):
    while ctx.running():
        for sql in READ_ONLY_WRITES:
            reqs = [{"type": "execute", "stmt": {"sql": sql}}]
            if sql in PROCESS_WIDE:
                reqs.append({"type": "describe", "sql": sql})
            reqs.append({"type": "close"})
            try:
                status, data = http(ctx, "POST", f"/db/{ctx.db}/v2/pipeline",
                                    json.dumps({"baton": None, "requests": reqs}).encode(),
                                    bearer(ctx.ro))
            except (OSError, httplib.HTTPException) as e:
                ctx.checks.note("readonly: transport errors", repr(e)[:80])
                continue
            if status >= 500:
                ctx.checks.fail("server_errors", f"read-only {sql!r}: HTTP {status}")
                continue
            if status != 200:
                ctx.checks.ok("read_only")
                continue
            _, outs = results(data)
            for (ok, payload), req in zip(outs, reqs):
                if req["type"] == "close":
                    continue
                if ok:
                    ctx.checks.fail("read_only", f"read-only token: {req['type']} {sql!r} succeeded")
                else:
                    ctx.checks.ok("read_only")
            if sql in PROCESS_WIDE:
                # Whatever the answer, every database must still work for everyone.
                try:
                    status, data = http(ctx, "POST", f"/db/{ctx.db}/v2/pipeline",
                                        pipeline_body(["SELECT count(*) FROM good"]), bearer(ctx.rw))
                    _, outs = results(data) if status == 200 else (None, [(False, status)])
                    if not outs or not outs[0][0]:
                        ctx.checks.fail("read_only", f"after {sql!r} a read-write read fails: {outs[:1]}",
                                        key=f"after {sql}")
                except (OSError, httplib.HTTPException, ValueError) as e:
                    ctx.checks.fail("read_only", f"after {sql!r} a read-write read fails: {e}",
                                    key=f"after {sql}")
            if not ctx.sleep(0.1):
                return


def raw_http(ctx, head, body, timeout=15):
    """Sends raw bytes; returns the status of the answer, or None if the server closed the
    connection without one."""
    s = ctx.track(socket.create_connection((ctx.host, ctx.port), timeout=timeout))
    try:
        try:
            s.sendall(head)
            if body:
                s.sendall(body)
        except OSError:
            pass  # The server may answer (413) and close before reading everything.
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                return None
            data += chunk
        return int(data.split(b" ", 2)[1])
    except (OSError, ValueError, IndexError):
        return None
    finally:
        s.close()


def abuse_malformed(ctx):
    rng = random.Random(8)
    bodies = [
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300))),
        lambda: b'{"baton": null, "requests": [',
        lambda: b"[" * 100000 + b"]" * 100000,
        lambda: b'{"requests":[{"type":"execute","stmt":{"sql":"SELECT ?","args":[{"type":"integer","value":"99999999999999999999999"}]}}]}',
        lambda: b'{"requests":[{"type":"execute","stmt":{"sql":"SELECT ?","args":[{"type":"blob","base64":"!!!"}]}}]}',
        lambda: b'{"statements": ["SELECT 1", 5, null]}',
        lambda: b'\xff\xfe{"requests": []}',
        lambda: json.dumps({"requests": [{"type": "execute", "stmt": {"sql": "SELECT 1"}}] * 5000}).encode()[:-3],
    ]
    while ctx.running():
        for make in bodies:
            path = rng.choice(SQL_PATHS)
            try:
                status, data = http(ctx, "POST", f"/db/{ctx.db}{path}", make(), bearer(ctx.rw))
                if status >= 500:
                    ctx.checks.fail("malformed", f"malformed body on {path}: HTTP {status} {data[:200]!r}")
                else:
                    ctx.checks.ok("malformed")
            except (OSError, httplib.HTTPException) as e:
                ctx.checks.note("malformed: transport errors", repr(e)[:80])
        # Oversized, with a Content-Length and chunked.
        size = ctx.max_body + 64 * 1024
        for chunked in (False, True):
            path = rng.choice(SQL_PATHS)
            if chunked:
                head = (f"POST /db/{ctx.db}{path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ctx.rw}\r\n"
                        f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
                chunk = b"x" * 65536
                body = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * (size // len(chunk) + 1) + b"0\r\n\r\n"
            else:
                head = (f"POST /db/{ctx.db}{path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ctx.rw}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n").encode()
                body = b" " * size
            status = raw_http(ctx, head, body)
            if status is None:
                ctx.checks.note("malformed: oversized closed without an answer", path)
            elif status != 413:
                ctx.checks.fail("malformed", f"oversized body ({size} bytes, chunked={chunked}) on {path}: HTTP {status}")
            else:
                ctx.checks.ok("malformed")
        if not ctx.sleep(0.2):
            return


def runaway_http(ctx, path):
    bound = ctx.stmt_timeout + 2.0
    start = time.monotonic()
    try:
        status, data = http(ctx, "POST", f"/db/{ctx.db}{path}", body_for(path, RUNAWAY_SQL),
                            bearer(ctx.ro), timeout=bound + 3)
        took = time.monotonic() - start
        text = data[:300].decode("utf-8", "replace")
        if status >= 500:
            ctx.checks.fail("server_errors", f"runaway on {path}: HTTP {status} {text}")
        elif took > bound:
            ctx.checks.fail("runaway", f"runaway on {path} answered after {took:.1f} s (bound {bound:.0f} s)",
                            key=path)
        elif status == 200 and '"count(*)"' in text and "error" not in text:
            ctx.checks.fail("runaway", f"runaway on {path} finished?! {text}")
        else:
            ctx.checks.ok("runaway")
            ctx.checks.note("runaway: answered after (s)", round(took, 1))
    except (OSError, httplib.HTTPException) as e:
        took = time.monotonic() - start
        ctx.checks.fail("runaway", f"runaway on {path}: no answer within {took:.1f} s ({type(e).__name__})",
                        key=path)


def abuse_runaway(ctx, index):
    paths = ["/v2/pipeline", "/v3/cursor", "/v1/execute", "/"]
    while ctx.running():
        if index == 0:
            # Over WebSocket too.
            bound = ctx.stmt_timeout + 2.0
            start = time.monotonic()
            try:
                ws = ws_session(ctx, ctx.ro)
                msg = ws.request(5, {"type": "execute", "stream_id": 1, "stmt": {"sql": RUNAWAY_SQL}},
                                 timeout=bound + 3)
                took = time.monotonic() - start
                if took > bound:
                    ctx.checks.fail("runaway", f"runaway over WebSocket answered after {took:.1f} s", key="ws")
                elif msg.get("type") == "response_ok":
                    ctx.checks.fail("runaway", f"runaway over WebSocket finished?! {msg}")
                else:
                    ctx.checks.ok("runaway")
                ws.close()
            except (WsClosed, OSError, ValueError) as e:
                if not ctx.running():
                    return  # the driver closes its own sockets when the run ends
                took = time.monotonic() - start
                ctx.checks.fail("runaway", f"runaway over WebSocket: no answer within {took:.1f} s ({e})", key="ws")
        else:
            runaway_http(ctx, paths[index % len(paths)])
        if not ctx.sleep(0.2):
            return


def abuse_runaway_write(ctx):
    """A writing runaway holds the write lock while it runs (optional group)."""
    while ctx.running():
        if not ctx.gate_hold():
            return
        sql = ("INSERT INTO junk(x) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "
               "SELECT x FROM c")
        try:
            http(ctx, "POST", f"/db/{ctx.db}/v2/pipeline", pipeline_body([sql]), bearer(ctx.rw),
                 timeout=ctx.stmt_timeout + 5)
        except (OSError, httplib.HTTPException):
            pass


def abuse_stalled(ctx, over_ws):
    """A cursor that starts with BEGIN IMMEDIATE and is never read."""
    hold = ctx.txn_timeout * 3
    while ctx.running():
        if not ctx.gate_hold():
            return
        batch = {"steps": [{"stmt": {"sql": "BEGIN IMMEDIATE"}},
                           {"stmt": {"sql": "INSERT INTO junk(x) VALUES (1)"}},
                           {"stmt": {"sql": BIG_SELECT}}]}
        try:
            if over_ws:
                ws = ws_session(ctx, ctx.rw)
                ws.send_json({"type": "request", "request_id": 9, "request":
                              {"type": "open_cursor", "stream_id": 1, "cursor_id": 1, "batch": batch}})
                ctx.sleep(hold)
                ws.close()
            else:
                body = json.dumps({"baton": None, "batch": batch}).encode()
                s = ctx.track(socket.create_connection((ctx.host, ctx.port), timeout=10))
                s.sendall((f"POST /db/{ctx.db}/v3/cursor HTTP/1.1\r\nHost: x\r\n"
                           f"Authorization: Bearer {ctx.rw}\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                ctx.sleep(hold)  # never read
                s.close()
            ctx.checks.note("stalled cursors", 1)
        except (WsClosed, OSError, ValueError) as e:
            ctx.checks.note("stalled: errors", repr(e)[:80])
            ctx.sleep(0.5)


def abuse_abandoned(ctx):
    """Transactions opened and never finished: HTTP streams with BEGIN IMMEDIATE (one at a
    time, see the module doc) and WebSockets that go quiet inside one."""
    n = 0
    while ctx.running():
        if not ctx.gate_hold():
            return
        n += 1
        try:
            if n % 2:
                status, data = http(ctx, "POST", f"/db/{ctx.db}/v2/pipeline",
                                    pipeline_body(["BEGIN IMMEDIATE", "INSERT INTO junk(x) VALUES (2)"],
                                                  close=False), bearer(ctx.rw),
                                    timeout=ctx.txn_timeout * 4 + 5)
                ctx.checks.note("abandoned: HTTP transactions", status)
            else:
                ws = ws_session(ctx, ctx.rw)
                ws.request(2, {"type": "execute", "stream_id": 1, "stmt": {"sql": "BEGIN IMMEDIATE"}},
                           timeout=ctx.txn_timeout * 4 + 5)
                # Quiet from now on; the socket stays open until the run ends.
                ctx.checks.note("abandoned: WebSocket transactions", 1)
        except (WsClosed, OSError, ValueError, httplib.HTTPException) as e:
            ctx.checks.note("abandoned: errors", repr(e)[:80])


def abuse_streams(ctx, limit):
    """Many HTTP streams from one (read-only) client, each holding a read transaction,
    never closed."""
    opened = 0
    while ctx.running() and opened < limit:
        try:
            status, data = http(ctx, "POST", f"/db/{ctx.db}/v2/pipeline",
                                pipeline_body(["BEGIN", "SELECT count(*) FROM good"], close=False),
                                bearer(ctx.ro))
            if status >= 500:
                ctx.checks.fail("server_errors", f"stream {opened}: HTTP {status} {data[:200]!r}")
            opened += 1
            ctx.checks.note("streams: answers", status)
        except (OSError, httplib.HTTPException) as e:
            ctx.checks.note("streams: errors", repr(e)[:80])
            ctx.sleep(0.1)
    ctx.checks.note("streams opened", opened)


def abuse_noread(ctx):
    """A WebSocket that sends requests with big answers and never reads; every other one does
    it inside a transaction (so it holds the write lock while it does not read)."""
    n = 0
    while ctx.running():
        n += 1
        in_txn = n % 2 == 0
        if in_txn and not ctx.gate_hold():
            return
        try:
            ws = ws_session(ctx, ctx.rw)
            if in_txn:
                ws.send_json({"type": "request", "request_id": 2, "request":
                              {"type": "execute", "stream_id": 1, "stmt": {"sql": "BEGIN IMMEDIATE"}}})
            ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            big = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 2000) "
                   "SELECT printf('%.1000c', 'x') FROM c")
            for i in range(200):
                ws.send_json({"type": "request", "request_id": 10 + i, "request":
                              {"type": "execute", "stream_id": 1, "stmt": {"sql": big}}})
            ctx.sleep(ctx.txn_timeout * 3)
            ws.close()
        except (WsClosed, OSError, ValueError) as e:
            ctx.checks.note("noread: errors", repr(e)[:80])
            ctx.sleep(0.5)


def abuse_memory(ctx, index):
    """Byte budgets: stored SQL, queued frames, cursor buffers, one huge value."""
    kind = index % 4
    try:
        if kind == 0:
            # Stored SQL: 512 KiB texts, up to 1024 of them on one socket.
            ws = Ws(ctx, f"/db/{ctx.db}")
            ws.hello(ctx.ro)
            text = "SELECT 1 -- " + "x" * (512 * 1024)
            for i in range(1024):
                if not ctx.running():
                    break
                ws.send_json({"type": "request", "request_id": 100 + i, "request":
                              {"type": "store_sql", "sql_id": i, "sql": text}})
                if i % 32 == 31:
                    drain(ws.sock)
            ctx.sleep(3600)
        elif kind == 1:
            # Queued requests of 900 KiB each, never read.
            ws = ws_session(ctx, ctx.ro)
            sql = "SELECT 1 -- " + "y" * (900 * 1024)
            for i in range(128):
                if not ctx.running():
                    break
                ws.send_json({"type": "request", "request_id": 10 + i, "request":
                              {"type": "execute", "stream_id": 1, "stmt": {"sql": sql}}})
            ctx.sleep(3600)
        elif kind == 2:
            # Cursor buffers of big rows, never fetched.
            ws = Ws(ctx, f"/db/{ctx.db}")
            ws.hello(ctx.ro)
            for c in range(4):
                ws.send_json({"type": "request", "request_id": 1 + c, "request":
                              {"type": "open_stream", "stream_id": c}})
                ws.send_json({"type": "request", "request_id": 10 + c, "request":
                              {"type": "open_cursor", "stream_id": c, "cursor_id": c, "batch": {"steps": [
                                  {"stmt": {"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c "
                                                   "LIMIT 100000) SELECT zeroblob(1000000) FROM c"}}]}}})
            ctx.sleep(3600)
        else:
            # One huge value, again and again (read-only, over HTTP).
            while ctx.running():
                try:
                    status, data = http(ctx, "POST", f"/db/{ctx.db}/v2/pipeline",
                                        pipeline_body(["SELECT zeroblob(900000000)"]), bearer(ctx.ro),
                                        timeout=15)
                    if status >= 500:
                        ctx.checks.fail("server_errors", f"zeroblob: HTTP {status} {data[:200]!r}")
                    ctx.checks.note("memory: zeroblob answers", status)
                except (OSError, httplib.HTTPException) as e:
                    ctx.checks.note("memory: zeroblob errors", repr(e)[:80])
                ctx.sleep(1.0)
    except (WsClosed, OSError, ValueError) as e:
        ctx.checks.note(f"memory {kind}: errors", repr(e)[:80])


def drain(sock):
    """Discards whatever the server has sent so far (answers nobody looks at)."""
    timeout = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        while sock.recv(1 << 20):
            pass
    except (BlockingIOError, InterruptedError):
        pass
    finally:
        sock.settimeout(timeout)


class Hygiene:
    """Sockets that should be cut off by the server, and when they were."""

    def __init__(self, ctx, name):
        self.ctx = ctx
        self.name = name
        self.closed_after = []
        self.opened = 0
        self.lock = threading.Lock()

    def closed(self, since):
        with self.lock:
            self.closed_after.append(time.monotonic() - since)

    def report(self):
        with self.lock:
            closed = sorted(self.closed_after)
        limit = os.environ.get("ABUSE_HYGIENE_LIMIT")
        med = f"{closed[len(closed) // 2]:.1f}" if closed else "-"
        msg = (f"{self.name}: {self.opened} opened, {len(closed)} closed by the server "
               f"(median after {med} s)")
        self.ctx.checks.note("hygiene", msg)
        if limit:
            late = [t for t in closed if t > float(limit)]
            open_left = self.opened - len(closed)
            if late or open_left:
                self.ctx.checks.fail("hygiene", f"{msg}; {open_left} still open, {len(late)} closed after {limit} s")


def watch_close(ctx, sock, since, hyg, drip=None, ws=False):
    """Waits until the server closes `sock` (or the run ends), sending one `drip` byte a
    second if given. On a WebSocket only a close frame counts (pings do not). Sockets the
    driver itself closes at the end of the run are not counted."""
    try:
        sock.settimeout(1.0)
    except OSError:
        return  # Closed by the driver at the end of the run.
    i = 0
    while ctx.running():
        try:
            if drip is not None:
                sock.sendall(drip[i % len(drip):i % len(drip) + 1])
                i += 1
            data = sock.recv(4096)
            if ctx.stop.is_set():
                return
            if data and ws and (data[0] & 0x0F) != 8:
                continue  # a ping (keepalive), not a close
            # EOF, or an answer (408, 400, a close frame) after which the server closes.
            hyg.closed(since)
            return
        except (socket.timeout, TimeoutError):
            continue
        except OSError:
            if not ctx.stop.is_set():
                hyg.closed(since)
            return


def spawn(ctx, threads, target, *args):
    t = threading.Thread(target=target, args=(ctx,) + args, daemon=True)
    t.start()
    threads.append(t)


def abuse_idle(ctx, count, threads, hyg):
    for _ in range(count):
        try:
            s = ctx.track(socket.create_connection((ctx.host, ctx.port), timeout=5))
            hyg.opened += 1
            spawn(ctx, threads, watch_close, s, time.monotonic(), hyg)
        except OSError as e:
            ctx.checks.note("idle: connect errors", repr(e)[:80])


def abuse_slowloris(ctx, count, threads, hyg_head, hyg_body):
    head = (f"POST /db/{ctx.db}/v2/pipeline HTTP/1.1\r\nHost: x\r\nX-Padding: " + "a" * 4000).encode()
    for i in range(count):
        try:
            s = ctx.track(socket.create_connection((ctx.host, ctx.port), timeout=5))
            if i % 2 == 0:
                hyg_head.opened += 1
                spawn(ctx, threads, watch_close, s, time.monotonic(), hyg_head, head)
            else:
                s.sendall((f"POST /db/{ctx.db}/v2/pipeline HTTP/1.1\r\nHost: x\r\n"
                           f"Authorization: Bearer {ctx.rw}\r\nContent-Type: application/json\r\n"
                           f"Content-Length: 100000\r\n\r\n").encode())
                hyg_body.opened += 1
                spawn(ctx, threads, watch_close, s, time.monotonic(), hyg_body, b" " * 100)
        except OSError as e:
            ctx.checks.note("slowloris: connect errors", repr(e)[:80])


def abuse_nohello(ctx, count, threads, hyg):
    for _ in range(count):
        try:
            ws = Ws(ctx, f"/db/{ctx.db}")
            hyg.opened += 1
            if ws.buf:
                hyg.closed(time.monotonic())
                continue
            spawn(ctx, threads, watch_close, ws.sock, time.monotonic(), hyg, None, True)
        except (WsClosed, OSError) as e:
            ctx.checks.note("nohello: errors", repr(e)[:80])


# ---- main ----------------------------------------------------------------------------------

def setup(ctx):
    for sql in ["CREATE TABLE IF NOT EXISTS good(id INTEGER PRIMARY KEY, x INTEGER)",
                "CREATE TABLE IF NOT EXISTS junk(x)",
                "CREATE TABLE IF NOT EXISTS ro_victim(x)",
                "INSERT INTO ro_victim VALUES (0)"]:
        status, data = http(ctx, "POST", f"/db/{ctx.db}/v2/pipeline", pipeline_body([sql]),
                            bearer(ctx.rw))
        _, outs = results(data) if status == 200 else (None, [])
        if status != 200 or not outs or not outs[0][0]:
            raise SystemExit(f"setup failed: {sql}: HTTP {status} {data[:300]!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--db", default="default")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--txn-timeout", type=float, default=2)
    ap.add_argument("--statement-timeout", type=float, default=3)
    ap.add_argument("--max-body-size", type=int, default=1 << 20)
    ap.add_argument("--rss-limit-mib", type=int, default=512)
    args = ap.parse_args()

    groups = os.environ.get("ABUSE_GROUPS")
    groups = [g for g in groups.split(",") if g] if groups else list(DEFAULT_GROUPS)
    skip = set(filter(None, os.environ.get("ABUSE_SKIP", "").split(",")))
    groups = [g for g in groups if g not in skip]
    scale = max(1, int(os.environ.get("ABUSE_SCALE", "1")))

    ctx = Ctx(args)
    setup(ctx)
    ctx.deadline = time.monotonic() + args.seconds
    log(f"abusing 127.0.0.1:{args.port} (pid {args.pid}) for {args.seconds:.0f} s: {', '.join(groups)}")
    good, mem = Good(), Mem()
    threads = []
    watcher = threading.Thread(target=memory_watch, args=(ctx, mem), daemon=True)
    watcher.start()
    spawn(ctx, threads, good_writer, good)
    hygiene = []
    if "upgrades" in groups:
        spawn(ctx, threads, abuse_upgrades)
    if "tokens" in groups:
        spawn(ctx, threads, abuse_tokens)
    if "readonly" in groups:
        spawn(ctx, threads, abuse_readonly)
    if "malformed" in groups:
        spawn(ctx, threads, abuse_malformed)
    if "runaway" in groups:
        for i in range(6 * scale):
            spawn(ctx, threads, abuse_runaway, i)
    if "runaway_write" in groups:
        spawn(ctx, threads, abuse_runaway_write)
    if "stalled" in groups:
        spawn(ctx, threads, abuse_stalled, False)
        spawn(ctx, threads, abuse_stalled, True)
    if "abandoned" in groups:
        spawn(ctx, threads, abuse_abandoned)
    if "streams" in groups:
        spawn(ctx, threads, abuse_streams, 1200 * scale)
    if "noread" in groups:
        spawn(ctx, threads, abuse_noread)
    if "memory" in groups:
        for i in range(8):
            spawn(ctx, threads, abuse_memory, i)
    if "idle" in groups:
        h = Hygiene(ctx, "idle sockets")
        hygiene.append(h)
        abuse_idle(ctx, 100 * scale, threads, h)
    if "slowloris" in groups:
        hh, hb = Hygiene(ctx, "slowloris headers"), Hygiene(ctx, "slowloris bodies")
        hygiene += [hh, hb]
        abuse_slowloris(ctx, 40 * scale, threads, hh, hb)
    if "nohello" in groups:
        h = Hygiene(ctx, "WebSockets without hello")
        hygiene.append(h)
        abuse_nohello(ctx, 40 * scale, threads, h)

    while time.monotonic() < ctx.deadline and not ctx.stop.is_set():
        time.sleep(0.2)
    ctx.stop.set()
    ctx.close_all()
    join_until = time.monotonic() + ctx.txn_timeout + ctx.stmt_timeout + 20
    for t in threads:
        t.join(timeout=max(0.0, join_until - time.monotonic()))
    stuck = [t for t in threads if t.is_alive()]

    # After the storm: the server is up, answers, and kept every acknowledged write.
    ctx.stop.clear()
    ctx.deadline = time.monotonic() + 30
    if not process_alive(ctx.pid):
        ctx.checks.fail("alive", "the server process exited")
    else:
        try:
            status, data = http(ctx, "POST", f"/db/{ctx.db}/v2/pipeline",
                                pipeline_body(["SELECT count(*) FROM good"]), bearer(ctx.rw),
                                timeout=ctx.txn_timeout + 10)
            _, outs = results(data) if status == 200 else (None, [(False, f"HTTP {status}")])
            if not outs or not outs[0][0]:
                raise RuntimeError(f"SELECT count(*) FROM good: {outs[:1]} {data[:200]!r}")
            count = int(outs[0][1]["result"]["rows"][0][0]["value"])
            if count < good.writes:
                ctx.checks.fail("responsive", f"{good.writes} writes acknowledged, {count} rows found")
        except Exception as e:  # noqa: BLE001 - any failure here is the server's
            ctx.checks.fail("responsive", f"the server does not answer after the run: {e!r}")
    ctx.stop.set()
    for h in hygiene:
        h.report()

    c = ctx.checks
    lat = sorted(good.latencies)
    p99 = lat[int(len(lat) * 0.99)] if lat else 0
    print()
    print("==== abuse summary ====")
    print(f"good writes: {good.writes} acknowledged, worst latency {good.worst:.2f} s, "
          f"p99 {p99:.2f} s (bound {ctx.txn_timeout + 1:.1f} s)")
    print(f"peak server RSS: {mem.peak / 1048576:.0f} MiB (bound {ctx.rss_limit >> 20} MiB)")
    for name in sorted(set(c.passes) | set(c.violations)):
        v = c.violations.get(name, [0, {}])
        state = "FAIL" if v[0] else "ok"
        print(f"  {state:4} {name}: {c.passes.get(name, 0)} held, {v[0]} violated")
        shown = list(v[1].values())
        for m in shown[:16]:
            print(f"         - {m}")
        if len(shown) > 16:
            print(f"         - ... and {len(shown) - 16} more kinds")
    for name, values in sorted(c.info.items()):
        if name == "hygiene":
            for v in values:
                print(f"  info {v}")
        elif all(isinstance(v, (int, float)) for v in values):
            counts = {}
            for v in values:
                counts[v] = counts.get(v, 0) + 1
            shown = dict(sorted(counts.items())[:12])
            print(f"  info {name}: {len(values)} ({shown})")
        else:
            print(f"  info {name}: {len(values)} (e.g. {values[0]})")
    if stuck:
        print(f"  note: {len(stuck)} driver threads still waiting on the server at the end")
    failed = sorted(c.violations)
    if failed:
        print(f"abuse: FAILED checks: {', '.join(failed)}")
        return 1
    print("abuse: all checks held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
