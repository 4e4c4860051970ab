// Many databases with the real @libsql/client (Node): a database created through the admin API
// (POST /v1/admin/databases) is reached over http:// and ws:// by path prefix (/db/<name>/ and
// sqld's /dev/<name>/) and by subdomain (<name>.localhost), and its data stays apart from the
// default database.
//
// What this client does with a URL path: over HTTP it resolves "v3-protobuf", "v2/pipeline" ...
// *relative to* the URL (new URL(path, base)), so the URL must end in a slash
// (http://host/db/app/); without it the last segment (the name) is dropped and the server
// answers 404 with a hint. Over WebSocket it connects to the URL as given (ws://host/db/app).
// It cannot add headers (so no x-namespace) except through a custom `fetch`.
//
// Subdomains need DNS for <name>.localhost; this file points *.localhost at 127.0.0.1 inside
// the test process (as a wildcard DNS record would), for both fetch and the ws package.
//
// Auth: the admin API takes the admin token; the created database gets its own token minted with
// `skylite token create --db <name>` (as a user would); `default` gets the read-write token.
import { describe, test, before } from "node:test";
import assert from "node:assert/strict";
import dns from "node:dns";
import { randomBytes } from "node:crypto";
import { LibsqlError } from "@libsql/client";
import { HttpServerError } from "@libsql/hrana-client";
import { withClientAt, count } from "./client_scenarios.mjs";
import { adminHeaders, adminToken, mintToken, token } from "./tokens.mjs";

const HTTP_URL = process.env.SKYLITE_TEST_URL;
if (!HTTP_URL) throw new Error("SKYLITE_TEST_URL is not set; run the suite through scripts/test.sh");
const WS_URL = HTTP_URL.replace(/^http/, "ws");
const base = new URL(HTTP_URL);

const originalLookup = dns.lookup;
dns.lookup = function (host, options, callback) {
  if (typeof host === "string" && host.endsWith(".localhost")) host = base.hostname;
  return originalLookup.call(this, host, options, callback);
};

const dbName = "node-" + randomBytes(5).toString("hex");
let dbToken; // read-write on dbName only, minted once the database exists
// A client on the named database, with that database's own token.
const withDbClient = (url, fn) => withClientAt(url, { authToken: dbToken }, fn);

async function createDatabase(name) {
  const resp = await fetch(`${HTTP_URL}/v1/admin/databases`, {
    method: "POST",
    headers: adminHeaders({ "content-type": "application/json" }),
    body: JSON.stringify({ name }),
  });
  const body = await resp.json();
  assert.equal(resp.status, 201, JSON.stringify(body));
  assert.deepEqual(body, { name, created: true });
}

describe("@libsql/client reaches a named database", () => {
  before(async () => {
    await createDatabase(dbName);
    dbToken = mintToken(["--db", dbName]);
    await withDbClient(`${HTTP_URL}/db/${dbName}/`, (c) =>
      c.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, via TEXT NOT NULL)"));
  });

  const urls = {
    "http path /db/<name>/": () => `${HTTP_URL}/db/${dbName}/`,
    "http path /dev/<name>/ (sqld)": () => `${HTTP_URL}/dev/${dbName}/`,
    "http subdomain <name>.localhost": () => `http://${dbName}.localhost:${base.port}`,
    "ws path /db/<name>": () => `${WS_URL}/db/${dbName}`,
    "ws path /dev/<name>/": () => `${WS_URL}/dev/${dbName}/`,
    "ws subdomain <name>.localhost": () => `ws://${dbName}.localhost:${base.port}`,
  };

  for (const [via, url] of Object.entries(urls)) {
    test(`${via}: insert, read back, interactive transaction`, () =>
      withDbClient(url(), async (c) => {
        await c.execute({ sql: "INSERT INTO notes (via) VALUES (?)", args: [via] });
        const rs = await c.execute({ sql: "SELECT count(*) AS n FROM notes WHERE via = ?", args: [via] });
        assert.equal(Number(rs.rows[0].n), 1);
        const tx = await c.transaction("write");
        await tx.execute({ sql: "INSERT INTO notes (via) VALUES (?)", args: [via + " (txn)"] });
        await tx.commit();
        const batch = await c.batch(["SELECT count(*) AS n FROM notes"], "read");
        assert.ok(Number(batch[0].rows[0].n) >= 2);
      }));
  }

  test("every way wrote to the same database, and default saw none of it", async () => {
    await withDbClient(`${HTTP_URL}/db/${dbName}/`, async (c) => {
      assert.equal(await count(c, "notes"), Object.keys(urls).length * 2);
    });
    for (const url of [HTTP_URL, WS_URL]) {
      await withClientAt(url, {}, async (c) => {
        const rs = await c.execute({
          sql: "SELECT count(*) AS n FROM sqlite_schema WHERE name = 'notes'", args: [] });
        assert.equal(Number(rs.rows[0].n), 0, `default database at ${url} has the table`);
      });
    }
  });

  test("an unknown database is a clear error, not a new database", async () => {
    for (const url of [`${HTTP_URL}/db/no-such-db/`, `${WS_URL}/db/no-such-db`]) {
      await withClientAt(url, { authToken: adminToken() }, async (c) => {
        await assert.rejects(c.execute("SELECT 1"), (e) => {
          assert.ok(e instanceof LibsqlError || e instanceof Error, String(e));
          return true;
        });
      });
    }
    const resp = await fetch(`${HTTP_URL}/v1/admin/databases/no-such-db`, { headers: adminHeaders() });
    assert.equal(resp.status, 404);
  });

  test("a path URL without the trailing slash fails with a hint", () =>
    withDbClient(`${HTTP_URL}/db/${dbName}`, async (c) => {
      await assert.rejects(c.execute("SELECT 1"), (e) => {
        assert.match(String(e.message), /trailing slash/);
        return true;
      });
    }));

  test("the admin API wants the admin token: none is 401, a database token is 403", async () => {
    let resp = await fetch(`${HTTP_URL}/v1/admin/databases`);
    assert.equal(resp.status, 401);
    resp = await fetch(`${HTTP_URL}/v1/admin/databases`, { headers: { authorization: `Bearer ${token()}` } });
    assert.equal(resp.status, 403);
  });

  for (const [transport, base, dbUrl] of [["http", HTTP_URL, `${HTTP_URL}/db/${dbName}/`], ["ws", WS_URL, `${WS_URL}/db/${dbName}`]]) {
    // over ws a refused token is a hello_error with our code and message; over http a 403,
    // which @libsql/client reports as SERVER_ERROR caused by an HttpServerError with status 403
    const forbidden = (name) => (e) => {
      assert.ok(e instanceof LibsqlError, String(e));
      if (transport === "http") {
        assert.equal(e.code, "SERVER_ERROR");
        let status;
        for (let c = e.cause; c && status === undefined; c = c.cause) {
          if (c instanceof HttpServerError) status = c.status;
        }
        assert.equal(status, 403, String(e));
      } else {
        assert.equal(e.code, "AUTH_DATABASE_FORBIDDEN");
        assert.ok(e.message.includes(name), e.message);
      }
      return true;
    };
    test(`${transport}: a database's token opens only that database; default's token does not open it`,
      {}, async () => {
        await withClientAt(dbUrl, {}, async (c) => {
          await assert.rejects(c.execute("SELECT count(*) FROM notes"), forbidden(dbName));
        });
        await withDbClient(base, async (c) => {
          await assert.rejects(c.execute("SELECT 1"), forbidden("default"));
        });
      });
  }

});
