// docs/migrate.md, run for real: a local SQLite file goes to the server with `skylite db import`,
// `skylite db env --write` writes .env, and the guide's @libsql/client app (migrate_app.ts,
// included verbatim in the guide) reads the same rows back. The app is TypeScript: it is
// compiled with the pinned `tsc` (tsconfig.json: strict, NodeNext, into .build/) and a type
// error fails the test before the compiled JS runs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { randomUUID } from "node:crypto";
import { adminToken } from "./tokens.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const cleanEnv = () => Object.fromEntries(Object.entries(process.env)
  .filter(([k]) => !/^(TURSO_|LIBSQL_|SKYLITE_URL|SKYLITE_AUTH)/.test(k)));

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 120_000, env: cleanEnv() });
  assert.equal(r.status, 0, `${cmd} ${args[0]} failed: ${r.stderr || r.error}`);
  return r.stdout;
}

// Type-checks and compiles migrate_app.ts to .build/migrate_app.js; returns that path.
function compileApp() {
  const tsc = join(here, "node_modules", "typescript", "bin", "tsc");
  rmSync(join(here, ".build"), { recursive: true, force: true }); // no stale output
  const r = spawnSync(process.execPath, [tsc, "--noEmit", "false", "-p", join(here, "tsconfig.json")],
    { cwd: here, encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, `tsc failed:\n${r.stdout}${r.stderr || r.error || ""}`);
  return join(here, ".build", "migrate_app.js");
}

test("the guide's @libsql/client app reads the imported rows", () => {
  const app = compileApp();
  const dir = mkdtempSync(join(tmpdir(), "skylite-guide-"));
  try {
    const bin = process.env.SKYLITE_BIN;
    const url = process.env.SKYLITE_TEST_URL;
    assert.ok(bin && url, "run through scripts/test.sh");
    // A local database made by the skylite shell itself (no sqlite3 needed).
    const sql = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n" +
      "INSERT INTO users VALUES (1, 'Ada'), (2, 'Grace'), (3, 'Ünïcødé 🚀');\n";
    const made = spawnSync(bin, ["shell", "file:app.db"], { cwd: dir, input: sql, encoding: "utf8", env: cleanEnv() });
    assert.equal(made.status, 0, made.stderr);
    const name = "guide-js-" + randomUUID().slice(0, 8);
    const server = ["--url", url, "--token", adminToken()];
    run(bin, ["db", "import", "app.db", "--name", name, ...server], dir);
    run(bin, ["db", "env", name, "--write", ...server], dir);
    assert.match(readFileSync(join(dir, ".env"), "utf8"), /TURSO_DATABASE_URL=http:\/\/.*\/db\/guide-js-.*\/\n/);
    const out = run(process.execPath, [app], dir);
    assert.deepEqual(out.trim().split("\n"), ["1 Ada", "2 Grace", "3 Ünïcødé 🚀"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
