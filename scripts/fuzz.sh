#!/usr/bin/env bash
# Runs the property/fuzz tests of every decoder a client can reach for much longer than the
# everyday suite does (which uses a small default number of cases per property):
#   crates/skylite-proto/tests/prop_decoders.rs   Hrana JSON + Protobuf bodies, WebSocket messages
#   crates/skylite-auth/tests/prop_jwt.rs         JWT verification
#   crates/skylite-engine/tests/prop_sql_text.rs  the SQL statement splitter and keyword looks
#   crates/skylite-server/tests/prop_server.rs    batons; a real server fed random HTTP bodies,
#                                                 headers, paths and WebSocket frames
# Env knobs:
#   PROPTEST_CASES=N   cases per property (default 200000; the server-level tests send that many
#                      requests, so they get FUZZ_SERVER_CASES instead)
#   FUZZ_SERVER_CASES=N   requests/sockets for the server-level tests (default 20000)
#   FUZZ_RELEASE=0     build the tests in debug mode (default: release, much faster per case)
#   FUZZ_ONLY=NAME     run only one test binary (prop_decoders, prop_jwt, prop_sql_text, prop_server)
# A failure prints the minimal failing input (nothing is written to the source tree).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CASES="${PROPTEST_CASES:-200000}"
SERVER_CASES="${FUZZ_SERVER_CASES:-20000}"
PROFILE=(--release)
[[ "${FUZZ_RELEASE:-1}" == "0" ]] && PROFILE=()

run() {
  local crate="$1" test="$2" cases="$3"
  if [[ -n "${FUZZ_ONLY:-}" && "$FUZZ_ONLY" != "$test" ]]; then return 0; fi
  echo "==> $test ($crate): $cases cases per property"
  PROPTEST_CASES="$cases" cargo test "${PROFILE[@]}" -p "$crate" --test "$test" -- --test-threads 2
}

FAILED=()
run skylite-proto prop_decoders "$CASES" || FAILED+=(prop_decoders)
run skylite-auth prop_jwt "$CASES" || FAILED+=(prop_jwt)
run skylite-engine prop_sql_text "$CASES" || FAILED+=(prop_sql_text)
run skylite-server prop_server "$SERVER_CASES" || FAILED+=(prop_server)
if [[ ${#FAILED[@]} -gt 0 ]]; then
  echo "fuzz: FAILED: ${FAILED[*]}"
  exit 1
fi
echo "fuzz: all properties held"
