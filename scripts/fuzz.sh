#!/usr/bin/env bash
# Runs the property/fuzz tests of every decoder a client can reach for much longer than the
# everyday suite does (which uses a small default number of cases per property):
#   crates/skylite-proto/tests/it/prop_decoders.rs   Hrana JSON + Protobuf bodies, WebSocket messages
#   crates/skylite-auth/tests/it/prop_jwt.rs         JWT verification
#   crates/skylite-engine/tests/it/prop_sql_text.rs  the SQL statement splitter and keyword looks
#   crates/skylite-server/src/baton.rs (props)       batons (unit tests of the server library)
#   crates/skylite-server/tests/it/prop_server.rs    a real server fed random HTTP bodies,
#                                                    headers, paths and WebSocket frames
# Each crate's integration tests are one binary (`--test it`); a module is picked by its
# name as a test filter (`prop_jwt::`).
# Env knobs:
#   PROPTEST_CASES=N   cases per property (default 200000; the server-level tests send that many
#                      requests, so they get FUZZ_SERVER_CASES instead)
#   FUZZ_SERVER_CASES=N   requests/sockets for the server-level tests (default 20000)
#   FUZZ_RELEASE=0     build the tests in debug mode (default: release, much faster per case)
#   FUZZ_ONLY=NAME     run only one suite (prop_decoders, prop_jwt, prop_sql_text, baton_props,
#                      prop_server)
# A failure prints the minimal failing input (nothing is written to the source tree).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CASES="${PROPTEST_CASES:-200000}"
SERVER_CASES="${FUZZ_SERVER_CASES:-20000}"
PROFILE=(--release)
[[ "${FUZZ_RELEASE:-1}" == "0" ]] && PROFILE=()

# $1 = crate, $2 = suite name (for FUZZ_ONLY), $3 = cases, $4 = test target args, $5 = name filter
run() {
  local crate="$1" suite="$2" cases="$3" target="$4" filter="$5"
  if [[ -n "${FUZZ_ONLY:-}" && "$FUZZ_ONLY" != "$suite" ]]; then return 0; fi
  echo "==> $suite ($crate): $cases cases per property"
  # shellcheck disable=SC2086 # $target is one or two words on purpose
  PROPTEST_CASES="$cases" cargo test "${PROFILE[@]}" -p "$crate" $target -- "$filter" --test-threads 2
}

FAILED=()
run skylite-proto prop_decoders "$CASES" "--test it" prop_decoders:: || FAILED+=(prop_decoders)
run skylite-auth prop_jwt "$CASES" "--test it" prop_jwt:: || FAILED+=(prop_jwt)
run skylite-engine prop_sql_text "$CASES" "--test it" prop_sql_text:: || FAILED+=(prop_sql_text)
run skylite-server baton_props "$CASES" "--lib" baton::props:: || FAILED+=(baton_props)
run skylite-server prop_server "$SERVER_CASES" "--test it" prop_server:: || FAILED+=(prop_server)
if [[ ${#FAILED[@]} -gt 0 ]]; then
  echo "fuzz: FAILED: ${FAILED[*]}"
  exit 1
fi
echo "fuzz: all properties held"
