// @libsql/hrana-client (Node) used directly against skylite over http:// (Hrana over HTTP):
// how a refused token looks to an app. Against sqld and Turso an app checks
// `e instanceof HttpServerError && e.status === 401` (or 403); skylite's 401/403 bodies carry
// `error` and `code` but no `message`, so the client reports them as exactly that, and not as
// a protocol ResponseError without the status.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { openHttp, HttpServerError, ResponseError } from "@libsql/hrana-client";
import { token, roToken, mintToken } from "./tokens.mjs";

const URL = process.env.SKYLITE_TEST_URL;
if (!URL) throw new Error("SKYLITE_TEST_URL is not set; run the suite through scripts/test.sh");

// Runs one query on a fresh HTTP client with `jwt`; returns its value or throws its error.
async function queryWith(jwt, sql = "SELECT 1") {
  const client = openHttp(URL, jwt);
  try {
    const stream = client.openStream();
    try {
      return (await stream.queryValue(sql)).value;
    } finally {
      stream.close();
    }
  } finally {
    client.close();
  }
}

// Asserts the raw HttpServerError an app checks for, with `status`.
const httpStatus = (status) => (e) => {
  assert.ok(e instanceof HttpServerError, `expected HttpServerError, got ${e?.constructor?.name}: ${e}`);
  assert.ok(!(e instanceof ResponseError));
  assert.equal(e.status, status);
  assert.match(e.message, new RegExp(`${status}`));
  return true;
};

describe("hrana-client over http://: refused tokens are HTTP errors with their status", () => {
  for (const [label, jwt] of [["no token", undefined], ["a garbage token", "garbage"], ["a non-JWT token", "a.b.c"]]) {
    test(`${label}: HttpServerError with status 401`, () => assert.rejects(queryWith(jwt), httpStatus(401)));
  }

  test("a token for another database: HttpServerError with status 403", () =>
    assert.rejects(queryWith(mintToken(["--db", "other"])), httpStatus(403)));

  test("the body still carries the code and the text for tools that read it", async () => {
    for (const [auth, status, code] of [
      [undefined, 401, "AUTH_JWT_MISSING"],
      ["Bearer garbage", 401, "AUTH_JWT_INVALID"],
      [`Bearer ${mintToken(["--db", "other"])}`, 403, "AUTH_DATABASE_FORBIDDEN"],
    ]) {
      const headers = { "content-type": "application/json", ...(auth ? { authorization: auth } : {}) };
      const resp = await fetch(`${URL}/v2/pipeline`, {
        method: "POST",
        headers,
        body: JSON.stringify({ baton: null, requests: [{ type: "execute", stmt: { sql: "SELECT 1" } }] }),
      });
      assert.equal(resp.status, status);
      assert.equal(resp.headers.get("content-type"), "application/json");
      if (status === 401) assert.match(resp.headers.get("www-authenticate") ?? "", /^Bearer/);
      const body = await resp.json();
      assert.equal(body.code, code);
      assert.ok(typeof body.error === "string" && body.error.length > 0, JSON.stringify(body));
      assert.equal("message" in body, false, JSON.stringify(body));
    }
  });

  test("valid tokens still work (read-write and read-only)", async () => {
    assert.equal(await queryWith(token(), "SELECT 42"), 42);
    assert.equal(await queryWith(roToken(), "SELECT 7"), 7);
  });
});
