// Child process of tls.test.mjs (not a test file itself): runs @libsql/client scenarios against
// the URL in SKYLITE_TLS_URL with the token in SKYLITE_TLS_TOKEN (minted by the parent). It is
// a separate process because Node reads NODE_EXTRA_CA_CERTS (the test certificate the parent
// made) only at start. Prints one JSON line with what it saw
// and exits 0, or prints the error and exits 1.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createClient } from "@libsql/client";

const url = process.env.SKYLITE_TLS_URL;
const client = createClient({ url, authToken: process.env.SKYLITE_TLS_TOKEN });
const t = "tls_" + randomBytes(6).toString("hex");
try {
  // execute, with positional and named arguments
  await client.execute(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, v TEXT)`);
  await client.execute({ sql: `INSERT INTO ${t} (v) VALUES (?)`, args: ["one"] });
  await client.execute({ sql: `INSERT INTO ${t} (v) VALUES (:v)`, args: { v: "two" } });

  // batch: all or nothing
  await client.batch([
    { sql: `INSERT INTO ${t} (v) VALUES (?)`, args: ["three"] },
    { sql: `INSERT INTO ${t} (v) VALUES (?)`, args: ["four"] },
  ], "write");
  await assert.rejects(client.batch([
    { sql: `INSERT INTO ${t} (v) VALUES (?)`, args: ["lost"] },
    `INSERT INTO no_such_table VALUES (1)`,
  ], "write"));

  // interactive transactions: one committed, one rolled back
  const tx = await client.transaction("write");
  try {
    await tx.execute({ sql: `INSERT INTO ${t} (v) VALUES (?)`, args: ["five"] });
    assert.equal((await tx.execute(`SELECT count(*) AS n FROM ${t}`)).rows[0].n, 5);
    await tx.commit();
  } finally {
    tx.close();
  }
  const rollback = await client.transaction("write");
  try {
    await rollback.execute(`DELETE FROM ${t}`);
    await rollback.rollback();
  } finally {
    rollback.close();
  }

  const rs = await client.execute(`SELECT v FROM ${t} ORDER BY id`);
  const values = rs.rows.map((r) => r.v);
  assert.deepEqual(values, ["one", "two", "three", "four", "five"]);
  console.log(JSON.stringify({ protocol: client.protocol, values }));
  client.close();
} catch (e) {
  client.close();
  console.error(`${e?.name}: ${e?.message}${e?.cause ? ` (cause: ${e.cause?.message ?? e.cause})` : ""}`);
  console.error(e?.stack);
  process.exit(1);
}
