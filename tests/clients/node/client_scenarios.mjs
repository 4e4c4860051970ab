// Shared @libsql/client scenarios, run once per transport: http.test.mjs (http:// URL,
// Hrana over HTTP /v2/pipeline) and ws.test.mjs (ws:// URL, Hrana over WebSocket).
// Covers execute (positional and named args), batches (incl. rollback on failure),
// interactive transactions, executeMultiple, every value type, errors, 10,000 rows,
// 20 concurrent clients and a libSQL vector query. Clients use the read-write token for
// `default` unless told otherwise; the auth scenarios use the read-only token, no or garbage
// tokens, and a token minted for another database.
import { describe, test, before } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createClient, LibsqlError } from "@libsql/client";
import { HttpServerError } from "@libsql/hrana-client";
import { token, roToken, mintToken } from "./tokens.mjs";

export const I64_MAX = 9223372036854775807n;
export const I64_MIN = -9223372036854775808n;

export const uniqueName = () => "t_" + randomBytes(6).toString("hex");

// Opens a @libsql/client for `url`, runs `fn(client)` and always closes the client.
// The token is the read-write token for `default` unless `opts.authToken` says otherwise.
export async function withClientAt(url, opts, fn) {
  const client = createClient({ url, authToken: token(), ...opts });
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

export async function count(client, table) {
  const rs = await client.execute(`SELECT count(*) AS n FROM ${table}`);
  return Number(rs.rows[0].n);
}

// Registers every scenario against `url` (http:// or ws://) inside a describe block named `label`.
export function defineClientScenarios(url, label) {
  const withClient = (opts, fn) => withClientAt(url, opts, fn);
  describe(label, () => {

    test("every value type round-trips (intMode bigint)", () =>
      withClient({ intMode: "bigint" }, async (c) => {
        const t = uniqueName();
        await c.execute(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, v)`);
        const values = [
          I64_MAX, I64_MIN, -1n, -42n, 0n,
          3.5, -0.25, 0.1 + 0.2, 1e300,
          "", "héllo wörld 🎉🚀 中文字符 日本語",
          new Uint8Array([0]), new Uint8Array([0, 1, 0, 255, 0]),
          null,
        ];
        for (const v of values) await c.execute({ sql: `INSERT INTO ${t} (v) VALUES (?)`, args: [v] });
        const rs = await c.execute(`SELECT v, typeof(v) AS ty FROM ${t} ORDER BY id`);
        assert.deepEqual(rs.columns, ["v", "ty"]);
        assert.equal(rs.rows.length, values.length);
        const typeName = (v) =>
          v === null ? "null" : typeof v === "bigint" ? "integer" : typeof v === "number" ? "real"
            : typeof v === "string" ? "text" : "blob";
        values.forEach((sent, i) => {
          const got = rs.rows[i].v;
          if (sent instanceof Uint8Array) {
            assert.ok(got instanceof ArrayBuffer, `row ${i} should be an ArrayBuffer`);
            assert.deepEqual(new Uint8Array(got), sent);
          } else {
            assert.equal(got, sent, `row ${i}`);
          }
          assert.equal(rs.rows[i].ty, typeName(sent), `typeof row ${i}`);
        });
      }));

    test("literal extremes; default intMode refuses unsafe integers, string mode keeps them", async () => {
      const sql = "SELECT 9223372036854775807 AS max, -9223372036854775808 AS min, -17 AS neg, 1.5 AS f, x'00ff00' AS b, NULL AS n";
      await withClient({ intMode: "bigint" }, async (c) => {
        const row = (await c.execute(sql)).rows[0];
        assert.equal(row.max, I64_MAX);
        assert.equal(row.min, I64_MIN);
        assert.equal(row.neg, -17n);
        assert.equal(row.f, 1.5);
        assert.deepEqual(new Uint8Array(row.b), new Uint8Array([0, 255, 0]));
        assert.equal(row.n, null);
        assert.equal(row[0], I64_MAX, "rows are also indexable by position");
      });
      await withClient({ intMode: "string" }, async (c) => {
        const row = (await c.execute(sql)).rows[0];
        assert.equal(row.max, "9223372036854775807");
        assert.equal(row.min, "-9223372036854775808");
      });
      await withClient({}, async (c) => {
        assert.equal((await c.execute("SELECT -17 AS neg")).rows[0].neg, -17);
        await assert.rejects(c.execute(sql), RangeError);
      });
    });

    test("positional and named arguments (:a, @a, $a)", () =>
      withClient({}, async (c) => {
        const t = uniqueName();
        await c.execute(`CREATE TABLE ${t} (a INTEGER, b TEXT, c REAL)`);
        await c.execute({ sql: `INSERT INTO ${t} VALUES (?, ?, ?)`, args: [1, "pos", 1.5] });
        await c.execute({ sql: `INSERT INTO ${t} VALUES (?1, ?3, ?2)`, args: [2, 2.5, "numbered"] });
        await c.execute({ sql: `INSERT INTO ${t} VALUES (:a, :b, :c)`, args: { a: 3, b: "colon", c: 3.5 } });
        await c.execute({ sql: `INSERT INTO ${t} VALUES (@a, @b, @c)`, args: { a: 4, b: "at", c: 4.5 } });
        await c.execute({ sql: `INSERT INTO ${t} VALUES ($a, $b, $c)`, args: { a: 5, b: "dollar", c: 5.5 } });
        await c.execute({ sql: `INSERT INTO ${t} VALUES (:a, @b, $c)`, args: { ":a": 6, "@b": "prefixed", "$c": 6.5 } });
        const rs = await c.execute({ sql: `SELECT a, b, c FROM ${t} WHERE a >= :min ORDER BY a`, args: { min: 1 } });
        assert.deepEqual(rs.rows.map((r) => [r.a, r.b, r.c]), [
          [1, "pos", 1.5], [2, "numbered", 2.5], [3, "colon", 3.5],
          [4, "at", 4.5], [5, "dollar", 5.5], [6, "prefixed", 6.5],
        ]);
      }));

    test("rowsAffected and lastInsertRowid", () =>
      withClient({}, async (c) => {
        const t = uniqueName();
        await c.execute(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, v TEXT)`);
        let rs = await c.execute(`INSERT INTO ${t} (id, v) VALUES (41, 'a')`);
        assert.equal(rs.rowsAffected, 1);
        assert.equal(rs.lastInsertRowid, 41n);
        rs = await c.execute(`INSERT INTO ${t} (v) VALUES ('b'), ('c'), ('d')`);
        assert.equal(rs.rowsAffected, 3);
        assert.equal(rs.lastInsertRowid, 44n);
        rs = await c.execute(`UPDATE ${t} SET v = 'z' WHERE id >= 42`);
        assert.equal(rs.rowsAffected, 3);
        rs = await c.execute(`DELETE FROM ${t} WHERE v = 'z'`);
        assert.equal(rs.rowsAffected, 3);
        assert.equal(await count(c, t), 1);
      }));

    test("batch in write mode returns one result per statement", () =>
      withClient({}, async (c) => {
        const t = uniqueName();
        const results = await c.batch([
          `CREATE TABLE ${t} (id INTEGER PRIMARY KEY, v TEXT)`,
          { sql: `INSERT INTO ${t} (v) VALUES (?)`, args: ["one"] },
          { sql: `INSERT INTO ${t} (v) VALUES (:v)`, args: { v: "two" } },
          `SELECT id, v FROM ${t} ORDER BY id`,
        ], "write");
        assert.equal(results.length, 4);
        assert.equal(results[1].rowsAffected, 1);
        assert.equal(results[2].lastInsertRowid, 2n);
        assert.deepEqual(results[3].rows.map((r) => [r.id, r.v]), [[1, "one"], [2, "two"]]);
      }));

    for (const [label, bad, message] of [
      ["UNIQUE violation", (t) => `INSERT INTO ${t} (id) VALUES (1)`, (t) => `UNIQUE constraint failed: ${t}.id`],
      ["syntax error", (t) => `INSRT INTO ${t} VALUES (9)`, () => "syntax error"],
    ]) {
      test(`a batch whose 3rd statement fails (${label}) is rolled back entirely`, () =>
        withClient({}, async (c) => {
          const t = uniqueName();
          await c.execute(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY)`);
          await c.execute(`INSERT INTO ${t} (id) VALUES (1)`);
          await assert.rejects(
            c.batch([
              `INSERT INTO ${t} (id) VALUES (2)`,
              `INSERT INTO ${t} (id) VALUES (3)`,
              bad(t),
              `INSERT INTO ${t} (id) VALUES (4)`,
            ], "write"),
            (e) => {
              assert.ok(e instanceof LibsqlError, `expected LibsqlError, got ${e}`);
              assert.equal(e.statementIndex, 2);
              assert.ok(e.message.includes(message(t)), e.message);
              return true;
            },
          );
          const rs = await c.execute(`SELECT id FROM ${t} ORDER BY id`);
          assert.deepEqual(rs.rows.map((r) => r.id), [1]);
        }));
    }

    test("SQL errors are LibsqlError with a code and SQLite's message", () =>
      withClient({}, async (c) => {
        const t = uniqueName();
        await c.execute(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, email TEXT UNIQUE)`);
        await c.execute(`INSERT INTO ${t} (email) VALUES ('a@example.com')`);
        await assert.rejects(c.execute({ sql: `INSERT INTO ${t} (email) VALUES (?)`, args: ["a@example.com"] }), (e) => {
          assert.ok(e instanceof LibsqlError);
          assert.match(e.code, /^SQLITE_CONSTRAINT/);
          assert.ok(e.message.includes(`UNIQUE constraint failed: ${t}.email`), e.message);
          return true;
        });
        await assert.rejects(c.execute("SELEC 1"), (e) => {
          assert.ok(e instanceof LibsqlError);
          assert.equal(typeof e.code, "string");
          assert.ok(!["UNKNOWN", "SERVER_ERROR", "HRANA_PROTO_ERROR"].includes(e.code), e.code);
          assert.ok(e.message.includes("syntax error"), e.message);
          return true;
        });
        await assert.rejects(c.execute("SELECT * FROM no_such_table_anywhere"), (e) => {
          assert.ok(e instanceof LibsqlError);
          assert.ok(e.message.includes("no such table: no_such_table_anywhere"), e.message);
          return true;
        });
        assert.equal(await count(c, t), 1, "client still usable after errors");
      }));

    test("interactive write transaction: commit makes rows visible, errors do not end it", () =>
      withClient({}, async (c) => {
        const t = uniqueName();
        await c.execute(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY)`);
        const tx = await c.transaction("write");
        try {
          await tx.execute(`INSERT INTO ${t} VALUES (1)`);
          await tx.batch([`INSERT INTO ${t} VALUES (2)`, `INSERT INTO ${t} VALUES (3)`]);
          await assert.rejects(tx.execute(`INSERT INTO ${t} VALUES (1)`), LibsqlError);
          assert.equal(await count(tx, t), 3, "the transaction sees its own writes");
          assert.equal(await count(c, t), 0, "others do not see uncommitted writes");
          await tx.commit();
        } finally {
          tx.close();
        }
        assert.equal(await count(c, t), 3);
      }));

    test("interactive write transaction: rollback discards everything", () =>
      withClient({}, async (c) => {
        const t = uniqueName();
        await c.execute(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY)`);
        const tx = await c.transaction("write");
        await tx.execute(`INSERT INTO ${t} VALUES (1)`);
        await tx.execute(`INSERT INTO ${t} VALUES (2)`);
        assert.equal(await count(tx, t), 2);
        await tx.rollback();
        assert.ok(tx.closed);
        assert.equal(await count(c, t), 0);
        // the write lock is released: a new write succeeds right away
        await c.execute(`INSERT INTO ${t} VALUES (7)`);
        assert.equal(await count(c, t), 1);
      }));

    test("closing a transaction without commit rolls it back", () =>
      withClient({}, async (c) => {
        const t = uniqueName();
        await c.execute(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY)`);
        const tx = await c.transaction("write");
        await tx.execute(`INSERT INTO ${t} VALUES (1)`);
        tx.close();
        await c.execute(`INSERT INTO ${t} VALUES (2)`);
        const rs = await c.execute(`SELECT id FROM ${t}`);
        assert.deepEqual(rs.rows.map((r) => r.id), [2]);
      }));

    test("read transaction reads but refuses writes", () =>
      withClient({}, async (c) => {
        const t = uniqueName();
        await c.execute(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY)`);
        await c.execute(`INSERT INTO ${t} VALUES (1)`);
        const tx = await c.transaction("read");
        try {
          assert.equal(await count(tx, t), 1);
          await assert.rejects(tx.execute(`INSERT INTO ${t} VALUES (2)`), LibsqlError);
        } finally {
          tx.close();
        }
        const rs = await c.execute(`SELECT id FROM ${t}`);
        assert.deepEqual(rs.rows.map((r) => r.id), [1]);
      }));

    test("batch in read mode runs reads and refuses writes", () =>
      withClient({}, async (c) => {
        const t = uniqueName();
        await c.execute(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY)`);
        await c.execute(`INSERT INTO ${t} VALUES (1)`);
        const [rs] = await c.batch([`SELECT id FROM ${t}`], "read");
        assert.deepEqual(rs.rows.map((r) => r.id), [1]);
        await assert.rejects(c.batch([`SELECT 1`, `INSERT INTO ${t} VALUES (2)`], "read"), LibsqlError);
        assert.equal(await count(c, t), 1);
      }));

    test("deferred batch and empty results keep column names", () =>
      withClient({}, async (c) => {
        const t = uniqueName();
        const [, , rs] = await c.batch([
          `CREATE TABLE ${t} (id INTEGER PRIMARY KEY, name TEXT, score REAL)`,
          `INSERT INTO ${t} (name, score) VALUES ('a', 1.5)`,
          `SELECT id, name, score FROM ${t} WHERE id < 0`,
        ], "deferred");
        assert.deepEqual(rs.columns, ["id", "name", "score"]);
        assert.deepEqual(rs.columnTypes, ["INTEGER", "TEXT", "REAL"]);
        assert.equal(rs.rows.length, 0);
      }));

    test("JSON functions and FTS5 full-text search work", () =>
      withClient({}, async (c) => {
        const t = uniqueName();
        await c.batch([
          `CREATE VIRTUAL TABLE ${t} USING fts5(title, body)`,
          { sql: `INSERT INTO ${t} VALUES (?, ?)`, args: ["SQLite", "a small fast database engine"] },
          { sql: `INSERT INTO ${t} VALUES (?, ?)`, args: ["Rust", "a language empowering everyone"] },
        ], "write");
        const hits = await c.execute({ sql: `SELECT title FROM ${t} WHERE ${t} MATCH ? ORDER BY rank`, args: ["database"] });
        assert.deepEqual(hits.rows.map((r) => r.title), ["SQLite"]);
        const j = await c.execute({ sql: "SELECT json_extract(?, '$.a.b[1]') AS v, json_array(1, 'x', NULL) AS arr", args: ['{"a":{"b":[10,"二十"]}}'] });
        assert.equal(j.rows[0].v, "二十");
        assert.equal(j.rows[0].arr, '[1,"x",null]');
      }));

    test("executeMultiple runs a script of several statements", () =>
      withClient({}, async (c) => {
        const t = uniqueName();
        await c.executeMultiple(`
          CREATE TABLE ${t} (id INTEGER PRIMARY KEY, v TEXT);
          INSERT INTO ${t} (v) VALUES ('a');
          INSERT INTO ${t} (v) VALUES ('b; not a separator');
          UPDATE ${t} SET v = upper(v) WHERE id = 1;
        `);
        const rs = await c.execute(`SELECT v FROM ${t} ORDER BY id`);
        assert.deepEqual(rs.rows.map((r) => r.v), ["A", "b; not a separator"]);
        await assert.rejects(c.executeMultiple(`INSERT INTO ${t} (v) VALUES ('c'); SELEC 1;`), LibsqlError);
      }));

    test("10,000-row result is read completely", () =>
      withClient({}, async (c) => {
        const t = uniqueName();
        await c.execute(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, label TEXT, half REAL)`);
        const ins = await c.execute(
          `WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 10000)
           INSERT INTO ${t} SELECT x, 'row-' || x, x / 2.0 FROM n`);
        assert.equal(ins.rowsAffected, 10000);
        const rs = await c.execute(`SELECT id, label, half FROM ${t} ORDER BY id`);
        assert.equal(rs.rows.length, 10000);
        rs.rows.forEach((r, i) => {
          assert.equal(r.id, i + 1);
          assert.equal(r.label, `row-${i + 1}`);
          assert.equal(r.half, (i + 1) / 2);
        });
      }));

    test("20 concurrent clients insert and read their own rows", async () => {
      const t = uniqueName();
      await withClient({}, (c) => c.execute(`CREATE TABLE ${t} (worker INTEGER, n INTEGER, PRIMARY KEY (worker, n))`));
      const worker = (w) =>
        withClient({}, async (c) => {
          for (let n = 0; n < 10; n++) await c.execute({ sql: `INSERT INTO ${t} VALUES (?, ?)`, args: [w, n] });
          await c.batch(
            [0, 1, 2, 3, 4].map((n) => ({ sql: `INSERT INTO ${t} VALUES (?, ?)`, args: [w, 100 + n] })),
            "write",
          );
          const rs = await c.execute({ sql: `SELECT n FROM ${t} WHERE worker = ? ORDER BY n`, args: [w] });
          return rs.rows.map((r) => r.n);
        });
      const results = await Promise.all(Array.from({ length: 20 }, (_, w) => worker(w)));
      const expected = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100, 101, 102, 103, 104];
      results.forEach((r) => assert.deepEqual(r, expected));
      await withClient({}, async (c) => assert.equal(await count(c, t), 20 * 15));
    });

    test("20 concurrent interactive write transactions all commit", async () => {
      const t = uniqueName();
      await withClient({}, (c) => c.execute(`CREATE TABLE ${t} (worker INTEGER, n INTEGER)`));
      const worker = (w) =>
        withClient({}, async (c) => {
          const tx = await c.transaction("write");
          try {
            await tx.execute({ sql: `INSERT INTO ${t} VALUES (?, 0)`, args: [w] });
            const rs = await tx.execute({ sql: `SELECT count(*) AS n FROM ${t} WHERE worker = ?`, args: [w] });
            await tx.execute({ sql: `INSERT INTO ${t} VALUES (?, ?)`, args: [w, rs.rows[0].n] });
            await tx.commit();
          } finally {
            tx.close();
          }
        });
      await Promise.all(Array.from({ length: 20 }, (_, w) => worker(w)));
      await withClient({}, async (c) => {
        const rs = await c.execute(`SELECT worker, group_concat(n) AS ns FROM ${t} GROUP BY worker ORDER BY worker`);
        assert.deepEqual(rs.rows.map((r) => [r.worker, r.ns]), Array.from({ length: 20 }, (_, w) => [w, "0,1"]));
      });
    });

    test("libSQL vector index, vector_top_k and vector_distance_cos", () =>
      withClient({}, async (c) => {
        const t = uniqueName();
        await c.execute(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, e F32_BLOB(3))`);
        await c.execute(`CREATE INDEX ${t}_idx ON ${t} (libsql_vector_idx(e))`);
        await c.batch([
          `INSERT INTO ${t} (id, e) VALUES (1, vector32('[1,2,3]'))`,
          `INSERT INTO ${t} (id, e) VALUES (2, vector32('[1,2,4]'))`,
          { sql: `INSERT INTO ${t} (id, e) VALUES (3, vector32(?))`, args: ["[-1,-2,-3]"] },
        ], "write");
        const rs = await c.execute(
          `SELECT t.id, vector_distance_cos(t.e, vector32('[1,2,3]')) AS d, vector_extract(t.e) AS txt
           FROM vector_top_k('${t}_idx', vector32('[1,2,3]'), 2) AS k
           JOIN ${t} AS t ON t.rowid = k.id ORDER BY d`);
        assert.deepEqual(rs.rows.map((r) => r.id), [1, 2]);
        assert.ok(Math.abs(rs.rows[0].d) < 1e-6, `distance to itself is ${rs.rows[0].d}`);
        assert.ok(rs.rows[1].d > 0 && rs.rows[1].d < 0.05, `d=${rs.rows[1].d}`);
        assert.equal(rs.rows[0].txt, "[1,2,3]");
        const far = await c.execute(`SELECT vector_distance_cos(e, vector32('[1,2,3]')) AS d FROM ${t} WHERE id = 3`);
        assert.ok(Math.abs(far.rows[0].d - 2) < 1e-6);
      }));

    describe("auth", () => {
      const t = uniqueName();
      before(() => withClient({}, (c) => c.batch([
        `CREATE TABLE ${t} (id INTEGER PRIMARY KEY, v TEXT)`,
        `INSERT INTO ${t} VALUES (1, 'one'), (2, 'two')`,
      ], "write")));
      const rowsNow = () => withClient({}, async (c) =>
        (await c.execute(`SELECT id, v FROM ${t} ORDER BY id`)).rows.map((r) => [r.id, r.v]));
      const readOnlyRefusal = (e) => {
        assert.ok(e instanceof LibsqlError, `expected LibsqlError, got ${e}`);
        assert.match(e.message, /read-only/);
        assert.match(e.code, /^SQLITE_(READONLY|AUTH)/);
        return true;
      };
      // A refused token over ws is a hello_error (then a close 1008); over http a 401/403,
      // which @libsql/client reports as SERVER_ERROR caused by hrana's HttpServerError with
      // the status.
      const overHttp = url.startsWith("http");
      const httpStatusOf = (e) => {
        assert.equal(e.code, "SERVER_ERROR", `${e}`);
        for (let c = e.cause; c; c = c.cause) {
          if (c instanceof HttpServerError) return c.status;
        }
        assert.fail(`no HttpServerError behind ${e}`);
      };
      const refusedTokenOpts = {};

      test("read-only token: reads work; execute, write batch and write transaction are refused", async () => {
        await withClient({ authToken: roToken() }, async (c) => {
          const rs = await c.execute(`SELECT v FROM ${t} ORDER BY id`);
          assert.deepEqual(rs.rows.map((r) => r.v), ["one", "two"]);
          const [read] = await c.batch([`SELECT count(*) AS n FROM ${t}`], "read");
          assert.equal(Number(read.rows[0].n), 2);
          await assert.rejects(c.execute(`INSERT INTO ${t} VALUES (3, 'three')`), readOnlyRefusal);
          await assert.rejects(c.batch([
            `INSERT INTO ${t} VALUES (4, 'four')`,
            `UPDATE ${t} SET v = 'changed'`,
          ], "write"), readOnlyRefusal);
          // a write transaction: refused at BEGIN IMMEDIATE or at its first write
          await assert.rejects(async () => {
            const tx = await c.transaction("write");
            try {
              await tx.execute(`DELETE FROM ${t}`);
              await tx.commit();
            } finally {
              tx.close();
            }
          }, readOnlyRefusal);
          assert.equal(await count(c, t), 2, "the client still reads after the refusals");
        });
        assert.deepEqual(await rowsNow(), [[1, "one"], [2, "two"]]);
      });

      for (const [label, authToken] of [["no token", undefined], ["a garbage token", "garbage"], ["a non-JWT token", "a.b.c"]]) {
        test(`${label} is an authentication error`, refusedTokenOpts, () =>
          withClient({ authToken }, async (c) => {
            await assert.rejects(c.execute("SELECT 1"), (e) => {
              assert.ok(e instanceof LibsqlError, `expected LibsqlError, got ${e}`);
              if (overHttp) {
                // a 401: an HTTP error whose status the app can see (as against sqld)
                assert.equal(httpStatusOf(e), 401, `${e}`);
              } else {
                // the hello_error gives code and message
                assert.match(e.code, /^AUTH_JWT_(MISSING|INVALID)$/);
                assert.match(e.message, /token/i);
              }
              return true;
            });
          }));
      }

      test("a token for another database is refused on default", refusedTokenOpts, () =>
        withClient({ authToken: mintToken(["--db", "other"]) }, async (c) => {
          await assert.rejects(c.execute(`SELECT count(*) FROM ${t}`), (e) => {
            assert.ok(e instanceof LibsqlError, `expected LibsqlError, got ${e}`);
            if (overHttp) {
              assert.equal(httpStatusOf(e), 403, `${e}`);
            } else {
              assert.equal(e.code, "AUTH_DATABASE_FORBIDDEN");
              assert.match(e.message, /`other`, not `default`/);
            }
            return true;
          });
        }));
    });
  });
}
