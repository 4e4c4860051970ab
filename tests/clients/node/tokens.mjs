// The tokens the Node client scenarios authenticate with (auth is on by default in skylite).
// scripts/test.sh mints them on the shared server's data dir and exports them:
// SKYLITE_TEST_TOKEN (read-write on `default`), SKYLITE_TEST_RO_TOKEN (read-only on `default`),
// SKYLITE_TEST_ADMIN_TOKEN (admin API + every database). mintToken() makes more with
// `skylite token create` (binary SKYLITE_BIN) on SKYLITE_TEST_DATA_DIR or a given data dir.
import { spawnSync } from "node:child_process";

function fromEnv(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run the suite through scripts/test.sh`);
  return value;
}

// Read when called, so that tls.test.mjs (own server) can import mintToken without them.
export const token = () => fromEnv("SKYLITE_TEST_TOKEN");
export const roToken = () => fromEnv("SKYLITE_TEST_RO_TOKEN");
export const adminToken = () => fromEnv("SKYLITE_TEST_ADMIN_TOKEN");

// `skylite token create --data-dir DIR ...flags`; returns the token (never printed).
export function mintToken(flags = [], { dataDir, bin } = {}) {
  const binary = bin || fromEnv("SKYLITE_BIN");
  const dir = dataDir || fromEnv("SKYLITE_TEST_DATA_DIR");
  const r = spawnSync(binary, ["token", "create", "--data-dir", dir, "--expires", "1d", ...flags],
    { encoding: "utf8", timeout: 60_000 });
  if (r.status !== 0) throw new Error(`token create ${flags.join(" ")} failed: ${r.stderr || r.error}`);
  return r.stdout.trim();
}

// Headers for the admin API.
export const adminHeaders = (extra = {}) => ({ authorization: `Bearer ${adminToken()}`, ...extra });

