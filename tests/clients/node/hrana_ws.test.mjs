// @libsql/hrana-client (Node) used directly against skylite over ws:// (Hrana over WebSocket).
// Covers what @libsql/client never exercises: subprotocol negotiation (hrana1/2/3 and
// hrana3-protobuf), stored SQL shared by the streams of one connection (storeSql/closeSql),
// cursors over batches streaming 10,000+ rows, describe, getAutocommit, sequence, batch
// conditions incl. is_autocommit, and errors. The v3 scenarios run once with JSON frames
// (hrana3) and once with Protobuf frames (hrana3-protobuf). Auth: the read-write token for
// `default`; the auth scenarios use the read-only token, no/garbage tokens (hello_error) and a
// token minted for another database.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  openWs, WsClient, WebSocket, BatchCond, ResponseError, ProtocolVersionError, ClosedError, ClientError,
} from "@libsql/hrana-client";
import { token, roToken, mintToken } from "./tokens.mjs";

const HTTP_URL = process.env.SKYLITE_TEST_URL;
if (!HTTP_URL) throw new Error("SKYLITE_TEST_URL is not set; run the suite through scripts/test.sh");
const URL = HTTP_URL.replace(/^http/, "ws");
const TOKEN = token();

const I64_MAX = 9223372036854775807n;
const uniqueName = () => "t_" + randomBytes(6).toString("hex");

// The subprotocols hrana-client 0.10.0 offers from openWs(url, jwt, 3), in its order.
const V3_OFFER = ["hrana3-protobuf", "hrana3", "hrana2", "hrana1"];

// Opens a WsClient on a socket offering exactly `protocols`; returns the client and the socket
// (the socket's `protocol` is the subprotocol the server picked).
function openWith(protocols, jwt = TOKEN) {
  const socket = new WebSocket(URL, protocols);
  return { client: new WsClient(socket, jwt), socket };
}

async function withClient(protocols, fn, jwt = TOKEN) {
  const { client, socket } = openWith(protocols, jwt);
  try {
    await client.getVersion(); // also required before storeSql/describe/cursors
    return await fn(client, socket);
  } finally {
    client.close();
  }
}

async function withStream(client, fn) {
  const stream = client.openStream();
  try {
    return await fn(stream);
  } finally {
    stream.close();
  }
}

describe("hrana-client over ws://: subprotocol negotiation", () => {
  test("openWs(url, jwt, 3) negotiates version 3, and the server picks hrana3-protobuf", async () => {
    const client = openWs(URL, TOKEN, 3);
    try {
      assert.equal(await client.getVersion(), 3);
      await withStream(client, async (s) => assert.equal((await s.queryValue("SELECT 'v3'")).value, "v3"));
    } finally {
      client.close();
    }
    await withClient(V3_OFFER, async (_c, socket) => assert.equal(socket.protocol, "hrana3-protobuf"));
  });

  test("openWs(url, jwt) (what @libsql/client 0.18.0 calls) negotiates hrana2", async () => {
    const client = openWs(URL, TOKEN);
    try {
      assert.equal(await client.getVersion(), 2);
    } finally {
      client.close();
    }
    await withClient(["hrana2", "hrana1"], async (c, socket) => {
      assert.equal(socket.protocol, "hrana2");
      assert.equal(await c.getVersion(), 2);
    });
  });

  test("hrana3 alone is JSON version 3", () =>
    withClient(["hrana3"], async (c, socket) => {
      assert.equal(socket.protocol, "hrana3");
      assert.equal(await c.getVersion(), 3);
    }));

  test("hrana1 works for plain statements; v2+ features are refused by the client", () =>
    withClient(["hrana1"], async (c, socket) => {
      assert.equal(socket.protocol, "hrana1");
      assert.equal(await c.getVersion(), 1);
      await withStream(c, async (s) => {
        assert.equal((await s.queryValue(["SELECT ? + 1", [41]])).value, 42);
        assert.throws(() => c.storeSql("SELECT 1"), ProtocolVersionError);
      });
    }));
});

for (const [protocols, encoding] of [[["hrana3"], "JSON"], [["hrana3-protobuf"], "Protobuf"]]) {
  describe(`hrana-client over ws:// (${protocols[0]}, ${encoding} frames)`, () => {
    test("negotiated subprotocol", () =>
      withClient(protocols, async (c, socket) => {
        assert.equal(socket.protocol, protocols[0]);
        assert.equal(await c.getVersion(), 3);
      }));

    test("values round-trip (bigint ints, floats, unicode, blobs with zero bytes, null)", () =>
      withClient(protocols, (c) => withStream(c, async (s) => {
        s.intMode = "bigint";
        const t = uniqueName();
        await s.run(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, v)`);
        const values = [I64_MAX, -I64_MAX - 1n, -7n, 0n, 2.5, -1e-300, "", "héllo 🎉 中文",
          new Uint8Array([0, 0, 1, 0]), null];
        for (const v of values) await s.run([`INSERT INTO ${t} (v) VALUES (?)`, [v]]);
        const rs = await s.query(`SELECT v FROM ${t} ORDER BY id`);
        assert.deepEqual(rs.columnNames, ["v"]);
        rs.rows.forEach((row, i) => {
          if (values[i] instanceof Uint8Array) assert.deepEqual(new Uint8Array(row.v), values[i]);
          else assert.equal(row.v, values[i], `row ${i}`);
        });
        const r = await s.run([`INSERT INTO ${t} (id, v) VALUES (:id, :v)`, { id: 100n, v: "named" }]);
        assert.equal(r.affectedRowCount, 1);
        assert.equal(r.lastInsertRowid, 100n);
      })));

    test("stored SQL is shared by two streams of one connection; closeSql forgets it", () =>
      withClient(protocols, async (c) => {
        const t = uniqueName();
        await withStream(c, (s) => s.run(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, src TEXT)`));
        const insert = c.storeSql(`INSERT INTO ${t} (src) VALUES (?) RETURNING id`);
        const select = c.storeSql(`SELECT src FROM ${t} ORDER BY id`);
        const a = c.openStream();
        const b = c.openStream();
        try {
          assert.equal((await a.queryValue([insert, ["a"]])).value, 1);
          assert.equal((await b.queryValue([insert, ["b"]])).value, 2);
          assert.equal((await a.queryValue([insert, ["a"]])).value, 3);
          assert.deepEqual((await b.query(select)).rows.map((r) => r.src), ["a", "b", "a"]);
          // stored SQL also works inside a batch and with describe
          const batch = b.batch();
          const step = batch.step().queryValue([insert, ["batch"]]);
          await batch.execute();
          assert.equal((await step).value, 4);
          assert.deepEqual((await a.describe(insert)).paramNames, [undefined]);

          insert.close();
          assert.equal(insert.closed, true);
          assert.throws(() => a.queryValue([insert, ["x"]]), ClosedError, "the client refuses a closed Sql");
          // the other stored statement is untouched
          assert.equal((await a.query(select)).rows.length, 4);
          // the freed id is reused by the client for new text: the server must run the NEW text
          const other = c.storeSql(`SELECT 'new text' AS v`);
          assert.equal((await b.queryValue(other)).value, "new text");
          assert.equal((await a.queryValue(other)).value, "new text");
          other.close();
          select.close();
        } finally {
          a.close();
          b.close();
        }
        await withStream(c, async (s) => assert.equal((await s.queryValue(`SELECT count(*) FROM ${t}`)).value, 4));
      }));

    test("a cursor over a batch streams 12,345 rows in order, then the next steps", () =>
      withClient(protocols, async (c) => withStream(c, async (s) => {
        const t = uniqueName();
        const N = 12345;
        await s.run(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, label TEXT, b BLOB)`);
        await s.run(`WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ${N})
                     INSERT INTO ${t} SELECT x, 'row-' || x, zeroblob(x % 4) FROM n`);
        const batch = s.batch(true);
        const all = batch.step();
        const allRows = all.query(`SELECT id, label, b FROM ${t} ORDER BY id`);
        const n = batch.step().condition(BatchCond.ok(all)).queryValue(`SELECT count(*) FROM ${t}`);
        const bad = batch.step();
        const badRes = bad.run(`INSERT INTO ${t} (id) VALUES (1)`); // duplicate key
        const onErr = batch.step().condition(BatchCond.error(bad)).queryValue("SELECT 'after error'");
        const skipped = batch.step().condition(BatchCond.ok(bad)).queryValue("SELECT 'never'");
        await batch.execute();
        const rs = await allRows;
        assert.equal(rs.rows.length, N);
        assert.deepEqual(rs.columnNames, ["id", "label", "b"]);
        rs.rows.forEach((r, i) => {
          assert.equal(r.id, i + 1);
          assert.equal(r.label, `row-${i + 1}`);
          assert.equal(r.b.byteLength, (i + 1) % 4);
        });
        assert.equal((await n).value, N);
        await assert.rejects(badRes, (e) => {
          assert.ok(e instanceof ResponseError, `${e}`);
          assert.match(e.code, /^SQLITE_CONSTRAINT/);
          assert.ok(e.message.includes(`UNIQUE constraint failed: ${t}.id`), e.message);
          return true;
        });
        assert.equal((await onErr).value, "after error");
        assert.equal(await skipped, undefined);
      })));

    test("a cursor over a generated 20,000-row result with no table", () =>
      withClient(protocols, async (c) => withStream(c, async (s) => {
        const batch = s.batch(true);
        const rows = batch.step().query(
          "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20000) SELECT x, x * x FROM n");
        await batch.execute();
        const rs = await rows;
        assert.equal(rs.rows.length, 20000);
        for (let i = 0; i < 20000; i++) {
          assert.equal(rs.rows[i][0], i + 1);
          if (rs.rows[i][1] !== (i + 1) * (i + 1)) assert.fail(`row ${i}`);
        }
      })));

    test("describe reports params, columns with decltypes, explain and readonly", () =>
      withClient(protocols, async (c) => withStream(c, async (s) => {
        const t = uniqueName();
        await s.run(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, label TEXT, score REAL)`);
        const d = await s.describe(`SELECT id, label AS name, score * 2 FROM ${t} WHERE id > :min AND label <> ? AND score < @max`);
        assert.deepEqual(d.paramNames, [":min", undefined, "@max"]);
        assert.deepEqual(d.columns.map((col) => col.name), ["id", "name", "score * 2"]);
        assert.deepEqual(d.columns.map((col) => col.decltype), ["INTEGER", "TEXT", undefined]);
        assert.equal(d.isExplain, false);
        assert.equal(d.isReadonly, true);
        const w = await s.describe(`INSERT INTO ${t} (label) VALUES ($label)`);
        assert.deepEqual(w.paramNames, ["$label"]);
        assert.deepEqual(w.columns, []);
        assert.equal(w.isReadonly, false);
        assert.equal((await s.describe("EXPLAIN SELECT 1")).isExplain, true);
        await assert.rejects(s.describe("SELEC 1"), (e) => e instanceof ResponseError && e.message.includes("syntax error"));
        // describe does not run anything
        assert.equal((await s.queryValue(`SELECT count(*) FROM ${t}`)).value, 0);
      })));

    test("getAutocommit follows BEGIN/COMMIT/ROLLBACK; another stream is isolated", () =>
      withClient(protocols, async (c) => {
        const t = uniqueName();
        const a = c.openStream();
        const b = c.openStream();
        try {
          await a.run(`CREATE TABLE ${t} (id INTEGER)`);
          assert.equal(await a.getAutocommit(), true);
          await a.run("BEGIN IMMEDIATE");
          assert.equal(await a.getAutocommit(), false);
          await a.run(`INSERT INTO ${t} VALUES (1)`);
          assert.equal(await b.getAutocommit(), true);
          assert.equal((await b.queryValue(`SELECT count(*) FROM ${t}`)).value, 0);
          await a.run("COMMIT");
          assert.equal(await a.getAutocommit(), true);
          assert.equal((await b.queryValue(`SELECT count(*) FROM ${t}`)).value, 1);
          await a.run("BEGIN");
          await a.run(`DELETE FROM ${t}`);
          assert.equal(await a.getAutocommit(), false);
          await a.run("ROLLBACK");
          assert.equal(await a.getAutocommit(), true);
          assert.equal((await b.queryValue(`SELECT count(*) FROM ${t}`)).value, 1);
        } finally {
          a.close();
          b.close();
        }
      }));

    test("closing a stream with an open transaction rolls it back", () =>
      withClient(protocols, async (c) => {
        const t = uniqueName();
        await withStream(c, (s) => s.run(`CREATE TABLE ${t} (id INTEGER)`));
        await withStream(c, async (s) => {
          await s.run("BEGIN IMMEDIATE");
          await s.run(`INSERT INTO ${t} VALUES (1)`);
        });
        await withStream(c, async (s) => {
          await s.run(`INSERT INTO ${t} VALUES (2)`); // the write lock is free again
          assert.deepEqual((await s.query(`SELECT id FROM ${t}`)).rows.map((r) => r.id), [2]);
        });
      }));

    test("sequence runs a script; a failing statement stops it", () =>
      withClient(protocols, async (c) => withStream(c, async (s) => {
        const t = uniqueName();
        await s.sequence(`CREATE TABLE ${t} (v TEXT); INSERT INTO ${t} VALUES ('a; b'); INSERT INTO ${t} VALUES ('c');`);
        assert.deepEqual((await s.query(`SELECT v FROM ${t}`)).rows.map((r) => r.v), ["a; b", "c"]);
        await assert.rejects(s.sequence(`INSERT INTO ${t} VALUES ('d'); SELEC 1; INSERT INTO ${t} VALUES ('e');`),
          (e) => e instanceof ResponseError && e.message.includes("syntax error"));
        assert.deepEqual((await s.query(`SELECT v FROM ${t}`)).rows.map((r) => r.v), ["a; b", "c", "d"]);
        const stored = c.storeSql(`INSERT INTO ${t} VALUES ('stored')`);
        await s.sequence(stored);
        stored.close();
        assert.equal((await s.queryValue(`SELECT count(*) FROM ${t}`)).value, 4);
      })));

    test("batch conditions: and/or/not and is_autocommit guard a transaction", () =>
      withClient(protocols, async (c) => withStream(c, async (s) => {
        const t = uniqueName();
        await s.run(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY)`);
        const batch = s.batch();
        const begin = batch.step();
        const beginP = begin.run("BEGIN");
        const ins1 = batch.step().condition(BatchCond.ok(begin));
        const ins1P = ins1.run(`INSERT INTO ${t} VALUES (1)`);
        const ins2 = batch.step().condition(BatchCond.ok(ins1));
        const ins2P = ins2.run(`INSERT INTO ${t} VALUES (1)`); // fails
        const commit = batch.step().condition(BatchCond.and(batch, [BatchCond.ok(ins1), BatchCond.ok(ins2)]));
        const commitP = commit.run("COMMIT");
        const rollback = batch.step().condition(BatchCond.and(batch, [
          BatchCond.not(BatchCond.ok(commit)), BatchCond.not(BatchCond.isAutocommit(batch))]));
        const rollbackP = rollback.run("ROLLBACK");
        const inAuto = batch.step().condition(BatchCond.or(batch, [BatchCond.isAutocommit(batch), BatchCond.ok(commit)]));
        const inAutoP = inAuto.queryValue("SELECT 'autocommit again'");
        await batch.execute();
        await beginP;
        assert.equal((await ins1P).affectedRowCount, 1);
        await assert.rejects(ins2P, ResponseError);
        assert.equal(await commitP, undefined, "COMMIT skipped");
        assert.notEqual(await rollbackP, undefined, "ROLLBACK ran");
        assert.equal((await inAutoP).value, "autocommit again");
        assert.equal(await s.getAutocommit(), true);
        assert.equal((await s.queryValue(`SELECT count(*) FROM ${t}`)).value, 0);
      })));

    test("SQL errors are ResponseError with a code; the stream and socket stay usable", () =>
      withClient(protocols, async (c) => withStream(c, async (s) => {
        await assert.rejects(s.query("SELEC 1"), (e) => {
          assert.ok(e instanceof ResponseError, `${e}`);
          assert.equal(typeof e.code, "string");
          assert.ok(e.message.includes("syntax error"), e.message);
          return true;
        });
        await assert.rejects(s.query("SELECT * FROM no_such_table_anywhere"),
          (e) => e instanceof ResponseError && e.message.includes("no such table: no_such_table_anywhere"));
        assert.equal((await s.queryValue("SELECT 6 * 7")).value, 42);
      })));

    test("10 streams on one connection run concurrently", () =>
      withClient(protocols, async (c) => {
        const t = uniqueName();
        await withStream(c, (s) => s.run(`CREATE TABLE ${t} (stream INTEGER, n INTEGER)`));
        await Promise.all(Array.from({ length: 10 }, (_, i) => withStream(c, async (s) => {
          for (let n = 0; n < 5; n++) await s.run([`INSERT INTO ${t} VALUES (?, ?)`, [i, n]]);
          assert.equal((await s.queryValue([`SELECT sum(n) FROM ${t} WHERE stream = ?`, [i]])).value, 10);
        })));
        await withStream(c, async (s) => assert.equal((await s.queryValue(`SELECT count(*) FROM ${t}`)).value, 50));
      }));
  });
}

// ---- auth: read-only token, missing/garbage token (hello_error), another database's token ----

// The error a refused hello leaves: the ResponseError itself, or a ClosedError caused by it.
function helloError(e) {
  assert.ok(e instanceof ClientError, `expected a hrana ClientError, got ${e}`);
  const cause = e instanceof ResponseError ? e : e.cause;
  assert.ok(cause instanceof ResponseError, `expected the hello_error as cause, got ${e}`);
  return cause;
}

for (const protocols of [["hrana2"], ["hrana3"], ["hrana3-protobuf"]]) {
  describe(`hrana-client over ws:// (${protocols[0]}): auth`, () => {
    test("read-only token: a read works, writes are refused, the data is unchanged", async () => {
      const t = uniqueName();
      await withClient(protocols, (c) => withStream(c, async (s) => {
        await s.run(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY)`);
        await s.run(`INSERT INTO ${t} VALUES (1)`);
      }));
      await withClient(protocols, (c) => withStream(c, async (s) => {
        assert.equal((await s.queryValue(`SELECT count(*) FROM ${t}`)).value, 1);
        for (const write of [`INSERT INTO ${t} VALUES (2)`, `DELETE FROM ${t}`, `DROP TABLE ${t}`]) {
          await assert.rejects(s.run(write), (e) => {
            assert.ok(e instanceof ResponseError, `${e}`);
            assert.match(e.code, /^SQLITE_(READONLY|AUTH)/);
            assert.match(e.message, /read-only/);
            return true;
          });
        }
        // a batch with a write fails on that step; the stream still reads
        const batch = s.batch();
        const read = batch.step().queryValue(`SELECT count(*) FROM ${t}`);
        const write = batch.step().run(`INSERT INTO ${t} VALUES (3)`);
        await batch.execute();
        assert.equal((await read).value, 1);
        await assert.rejects(write, (e) => e instanceof ResponseError && /read-only/.test(e.message));
        assert.equal((await s.queryValue(`SELECT count(*) FROM ${t}`)).value, 1);
      }), roToken());
      await withClient(protocols, (c) => withStream(c, async (s) =>
        assert.deepEqual((await s.query(`SELECT id FROM ${t}`)).rows.map((r) => r.id), [1])));
    });

    for (const [label, jwt] of [["no token", null], ["a garbage token", "garbage"], ["a non-JWT token", "a.b.c"]]) {
      test(`${label}: the server answers hello_error and the client reports it`, async () => {
        const { client } = openWith(protocols, jwt);
        try {
          await client.getVersion();
          const s = client.openStream();
          await assert.rejects(s.queryValue("SELECT 1"), (e) => {
            const err = helloError(e);
            assert.match(err.code, /^AUTH_JWT_(MISSING|INVALID)$/);
            assert.match(err.message, /token|auth/i);
            return true;
          });
          assert.equal(client.closed, true, "a refused hello closes the client");
        } finally {
          client.close();
        }
      });
    }

    test("a token for another database is refused on default", async () => {
      const { client } = openWith(protocols, mintToken(["--db", "other"]));
      try {
        await client.getVersion();
        const s = client.openStream();
        await assert.rejects(s.queryValue("SELECT 1"), (e) => {
          const err = helloError(e);
          assert.equal(err.code, "AUTH_DATABASE_FORBIDDEN");
          assert.match(err.message, /`other`, not `default`/);
          return true;
        });
      } finally {
        client.close();
      }
    });
  });
}

// ---- the database is bound at hello: an upgrade without a token tells nothing ----

describe("hrana-client over ws://: the database is bound only when hello brings a token", () => {
  // Runs one query on `/db/<name>` with `jwt`; returns the hello error it fails with.
  async function helloErrorAt(name, jwt) {
    const socket = new WebSocket(`${URL}/db/${name}`, ["hrana3"]);
    const client = new WsClient(socket, jwt);
    try {
      await client.getVersion(); // the upgrade itself succeeded
      const s = client.openStream();
      let error;
      await assert.rejects(s.queryValue("SELECT 1"), (e) => {
        error = helloError(e);
        return true;
      });
      return error;
    } finally {
      client.close();
    }
  }

  test("a valid token for a missing database: hello_error DATABASE_NOT_FOUND", async () => {
    const name = "missing-" + randomBytes(4).toString("hex");
    const err = await helloErrorAt(name, mintToken(["--db", name]));
    assert.equal(err.code, "DATABASE_NOT_FOUND");
    assert.match(err.message, new RegExp(name));
  });

  test("without a token, a missing and an existing database answer alike", async () => {
    const missing = await helloErrorAt("missing-" + randomBytes(4).toString("hex"), null);
    const existing = await helloErrorAt("default", null);
    assert.equal(missing.code, "AUTH_JWT_MISSING");
    assert.equal(existing.code, missing.code);
    assert.equal(existing.message, missing.message);
  });
});
