// @libsql/client (Node) against skylite over ws:// (Hrana over WebSocket on GET /; this
// client offers hrana2/hrana1 and must get hrana2). Runs every shared scenario from
// client_scenarios.mjs, plus what only a WebSocket connection has: many requests in flight
// on one socket, a transaction and plain statements sharing one socket, reconnecting.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { LibsqlError } from "@libsql/client";
import { defineClientScenarios, withClientAt, count, uniqueName } from "./client_scenarios.mjs";

const HTTP_URL = process.env.SKYLITE_TEST_URL;
if (!HTTP_URL) throw new Error("SKYLITE_TEST_URL is not set; run the suite through scripts/test.sh");
const URL = HTTP_URL.replace(/^http/, "ws");

defineClientScenarios(URL, "@libsql/client over ws://");

describe("@libsql/client over ws://, one socket", () => {
  const withClient = (opts, fn) => withClientAt(URL, opts, fn);

  test("100 statements in flight at once on one client all get their own answer", () =>
    withClient({}, async (c) => {
      const t = uniqueName();
      await c.execute(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, v TEXT)`);
      const inserted = await Promise.all(Array.from({ length: 100 }, (_, i) =>
        c.execute({ sql: `INSERT INTO ${t} (id, v) VALUES (?, ?) RETURNING id, v`, args: [i, `v${i}`] })));
      inserted.forEach((rs, i) => assert.deepEqual([rs.rows[0].id, rs.rows[0].v], [i, `v${i}`]));
      const reads = await Promise.all(Array.from({ length: 100 }, (_, i) =>
        c.execute({ sql: `SELECT v FROM ${t} WHERE id = ?`, args: [i] })));
      reads.forEach((rs, i) => assert.equal(rs.rows[0].v, `v${i}`));
    }));

  test("an open write transaction and plain reads share one client", () =>
    withClient({}, async (c) => {
      const t = uniqueName();
      await c.execute(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY)`);
      await c.execute(`INSERT INTO ${t} VALUES (1)`);
      const tx = await c.transaction("write");
      try {
        await tx.execute(`INSERT INTO ${t} VALUES (2)`);
        // a read on the same client (same socket, another stream) does not wait for the transaction
        assert.equal(await count(c, t), 1);
        assert.equal(await count(tx, t), 2);
        await tx.commit();
      } finally {
        tx.close();
      }
      assert.equal(await count(c, t), 2);
    }));

  test("errors on one stream leave the socket usable for the next statements", () =>
    withClient({}, async (c) => {
      for (let i = 0; i < 5; i++) {
        await assert.rejects(c.execute("SELEC 1"), (e) => e instanceof LibsqlError && e.message.includes("syntax error"));
        assert.equal((await c.execute("SELECT 41 + 1 AS v")).rows[0].v, 42);
      }
    }));

  test("a client can be closed and a new one opened at once", async () => {
    for (let i = 0; i < 10; i++) {
      await withClient({}, async (c) => assert.equal((await c.execute({ sql: "SELECT ? AS i", args: [i] })).rows[0].i, i));
    }
  });

  test("the client reports protocol \"ws\"", () =>
    withClient({}, async (c) => {
      assert.equal(c.protocol, "ws");
      assert.equal(c.closed, false);
    }));
});
