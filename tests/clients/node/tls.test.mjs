// @libsql/client (Node) over TLS: starts its OWN skylite server (binary from SKYLITE_BIN, default
// target/release/skylite) with --tls-cert/--tls-key on a free port, using a self-signed
// certificate for localhost/127.0.0.1 made here with `openssl req -x509` in a temp folder, then
// runs execute / batch / transaction through https://, wss:// and libsql:// URLs (Node's client
// maps libsql:// to https://). Each scenario runs in a child process (tls_client.mjs) started
// with NODE_EXTRA_CA_CERTS pointing at the certificate, since Node reads it only at start.
// Auth is on: once the server is up, a token is minted on its data dir with
// `skylite token create` and handed to the child in SKYLITE_TLS_TOKEN.
// Skipped, saying why, when openssl or the server binary is missing.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createServer } from "node:net";
import https from "node:https";
import { mintToken } from "./tokens.mjs";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const ROOT = join(HERE, "..", "..", "..");
const BIN = process.env.SKYLITE_BIN || join(ROOT, "target", "release", "skylite");

const hasOpenssl = spawnSync("openssl", ["version"]).status === 0;
const skip = !hasOpenssl
  ? "openssl is not installed: cannot make a test certificate, so the TLS client test is skipped"
  : !existsSync(BIN)
    ? `no skylite binary at ${BIN} (cargo build --release -p skylite, or set SKYLITE_BIN): TLS client test skipped`
    : false;
if (skip) console.log(`# SKIP tls.test.mjs: ${skip}`);

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function healthy(port, ca) {
  return new Promise((resolve) => {
    const req = https.get({ host: "127.0.0.1", port, path: "/health", ca, servername: "localhost", timeout: 2000 },
      (res) => { res.resume(); resolve(res.statusCode === 200); });
    req.on("error", () => resolve(false));
    req.on("timeout", () => { req.destroy(); resolve(false); });
  });
}

// Runs tls_client.mjs against `url`; resolves to { code, stdout, stderr }.
function runClient(url, { trust = true } = {}) {
  const env = { ...process.env, SKYLITE_TLS_URL: url, SKYLITE_TLS_TOKEN: state.token };
  delete env.NODE_EXTRA_CA_CERTS;
  if (trust) env.NODE_EXTRA_CA_CERTS = state.cert;
  return new Promise((resolve) => {
    execFile(process.execPath, [join(HERE, "tls_client.mjs")], { env, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }));
  });
}

const state = { dir: null, cert: null, port: 0, server: null, log: "", token: "" };

describe("@libsql/client over TLS (own skylite server with --tls-cert/--tls-key)", { skip }, () => {
  before(async () => {
    state.dir = mkdtempSync(join(tmpdir(), "skylite-tls-"));
    state.cert = join(state.dir, "cert.pem");
    const key = join(state.dir, "key.pem");
    const made = spawnSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", key, "-out", state.cert, "-days", "2", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ], { encoding: "utf8" });
    assert.equal(made.status, 0, `openssl req failed: ${made.stderr}`);
    state.port = await freePort();
    state.server = spawn(BIN, [
      "serve", "--listen", `127.0.0.1:${state.port}`, "--data-dir", join(state.dir, "data"),
      "--tls-cert", state.cert, "--tls-key", key,
    ], { stdio: ["ignore", "pipe", "pipe"] });
    state.server.stdout.on("data", (d) => { state.log += d; });
    state.server.stderr.on("data", (d) => { state.log += d; });
    const ca = readFileSync(state.cert);
    const deadline = Date.now() + 60_000;
    while (!(await healthy(state.port, ca))) {
      if (state.server.exitCode !== null) throw new Error(`skylite exited early:\n${state.log}`);
      if (Date.now() > deadline) throw new Error(`skylite did not become healthy over https:\n${state.log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    state.token = mintToken([], { dataDir: join(state.dir, "data"), bin: BIN });
  });

  after(async () => {
    if (state.server && state.server.exitCode === null) {
      const exited = new Promise((r) => state.server.once("exit", r));
      state.server.kill("SIGTERM");
      let timer;
      await Promise.race([exited, new Promise((r) => { timer = setTimeout(r, 10_000); })]);
      clearTimeout(timer);
      if (state.server.exitCode === null) state.server.kill("SIGKILL");
    }
    if (state.dir) rmSync(state.dir, { recursive: true, force: true });
  });

  const expected = ["one", "two", "three", "four", "five"];
  for (const [scheme, protocol] of [["https", "http"], ["wss", "ws"], ["libsql", "http"]]) {
    test(`${scheme}:// URL: execute, batch, transactions (client protocol "${protocol}")`, async () => {
      for (const host of ["localhost", "127.0.0.1"]) {
        const r = await runClient(`${scheme}://${host}:${state.port}`);
        assert.equal(r.code, 0, `client failed:\n${r.stderr}\n--- server log ---\n${state.log}`);
        const out = JSON.parse(r.stdout.trim().split("\n").pop());
        assert.equal(out.protocol, protocol);
        assert.deepEqual(out.values, expected);
      }
    });
  }

  test("a client that does not trust the certificate is refused (the TLS is real)", async () => {
    for (const scheme of ["https", "wss"]) {
      const r = await runClient(`${scheme}://localhost:${state.port}`, { trust: false });
      assert.notEqual(r.code, 0, `${scheme}: an untrusted certificate was accepted`);
      assert.match(r.stderr, /certificate|issuer/i, `${scheme}: failed for another reason:\n${r.stderr}`);
    }
  });

  test("plain http:// to the TLS port fails, and the server keeps serving", async () => {
    const r = await runClient(`http://127.0.0.1:${state.port}`);
    assert.notEqual(r.code, 0, "plain HTTP was served on the TLS port");
    assert.ok(await healthy(state.port, readFileSync(state.cert)));
  });

  test("the server's start line names https:// and wss://", () => {
    const plain = state.log.replace(/\x1b\[[0-9;]*m/g, "");
    assert.match(plain, new RegExp(`listening on https://127\\.0\\.0\\.1:${state.port} \\(wss://127\\.0\\.0\\.1:${state.port}\\)`));
  });
});
