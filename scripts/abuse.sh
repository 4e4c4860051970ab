#!/usr/bin/env bash
# The abuse test: starts a skylite server with auth on, on a free loopback port, and misbehaves
# against it from many sockets at once for a bounded time (spoofed upgrades, bad and forged
# tokens, read-only write tricks, malformed and oversized bodies, runaway statements, stalled
# cursors, abandoned transactions and streams, sockets that never read, memory hogs, idle,
# slowloris and no-`hello` sockets) while a well-behaved client writes. It fails if a
# well-behaved write fails or takes longer than --txn-timeout + 1 s, if the server's memory
# goes over a bound, if the server exits or panics, or if any abuse gets in. The driver is
# scripts/abuse.py (Python 3 standard library); its header lists every check and abuse group.
#
# Usage: scripts/abuse.sh [--short]
# Env knobs:
#   ABUSE_SECONDS=N        how long to misbehave (default 60; --short: 20)
#   SKYLITE_BIN=PATH       use this server binary (default: cargo build --release -p skylite)
#   ABUSE_RSS_LIMIT_MIB=N  memory bound for the server (default 512)
#   ABUSE_GROUPS / ABUSE_SKIP   comma lists of abuse groups to run / leave out (see abuse.py)
#   ABUSE_SCALE=N          multiply the number of abusive sockets (default 1)
#   ABUSE_HYGIENE_LIMIT=S  fail if idle/slowloris/no-hello sockets stay open longer than S s (default 8)
#   ABUSE_KEEP=1           keep the data folder and server log
set -euo pipefail

# ---- the server under test: limits kept small so the run sees them act -------------------
TXN_TIMEOUT="${ABUSE_TXN_TIMEOUT:-2}"              # seconds
STATEMENT_TIMEOUT="${ABUSE_STATEMENT_TIMEOUT:-3}"  # seconds
MAX_BODY_SIZE=$((1024 * 1024))
SERVER_FLAGS=(
  --txn-timeout "$TXN_TIMEOUT"
  --statement-timeout "$STATEMENT_TIMEOUT"
  --stream-idle-timeout 10
  --max-body-size "$MAX_BODY_SIZE"
  --max-response-size $((8 * 1024 * 1024))
  --header-timeout 3
  --idle-timeout 5
  --body-timeout 3
  --ws-hello-timeout 3
  --send-timeout 5
)
# Idle, slowloris and no-hello sockets must be cut within this many seconds (the timeouts
# above plus slack for a busy machine).
export ABUSE_HYGIENE_LIMIT="${ABUSE_HYGIENE_LIMIT:-8}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_TO_RUN="${ABUSE_SECONDS:-60}"
if [[ "${1:-}" == "--short" ]]; then
  SECONDS_TO_RUN="${ABUSE_SECONDS:-20}"
fi
RSS_LIMIT="${ABUSE_RSS_LIMIT_MIB:-512}"

if [[ -z "${SKYLITE_BIN:-}" ]]; then
  cargo build --release -p skylite
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/skylite"
else
  BIN="$SKYLITE_BIN"
fi
[[ -x "$BIN" ]] || { echo "abuse: no server binary at $BIN"; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/skylite-abuse.XXXXXX")"
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ "${ABUSE_KEEP:-0}" == "1" ]]; then
    echo "abuse: kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Flags this build does not know yet are left out (with a warning), so the script runs
# against older builds too; a missing --statement-timeout then shows as runaway failures.
HELP="$("$BIN" serve --help)"
FLAGS=()
for ((i = 0; i < ${#SERVER_FLAGS[@]}; i += 2)); do
  flag="${SERVER_FLAGS[i]}" value="${SERVER_FLAGS[i + 1]}"
  if grep -q -- "$flag " <<<"$HELP"; then
    FLAGS+=("$flag" "$value")
  else
    echo "abuse: warning: this build has no $flag; running without it"
  fi
done

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
DATA="$WORK/data"
mkdir -p "$DATA"
mint() { "$BIN" token create --data-dir "$DATA" --expires 1d "$@" 2>>"$WORK/token.log"; }
ABUSE_RW_TOKEN="$(mint --db default)"
ABUSE_RO_TOKEN="$(mint --db default --read-only)"
ABUSE_OTHER_TOKEN="$(mint --db other)"
ABUSE_REVOKED_TOKEN="$(mint --db default)"
"$BIN" token revoke --data-dir "$DATA" "$ABUSE_REVOKED_TOKEN" >>"$WORK/token.log" 2>&1
export ABUSE_RW_TOKEN ABUSE_RO_TOKEN ABUSE_OTHER_TOKEN ABUSE_REVOKED_TOKEN

echo "abuse: starting $BIN serve on 127.0.0.1:$PORT ${FLAGS[*]}"
RUST_LOG="${RUST_LOG:-info}" "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" "${FLAGS[@]}" \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 300); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/health', timeout=1)" 2>/dev/null; then
    break
  fi
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "abuse: the server did not start"; sed 's/\x1b\[[0-9;]*m//g' "$WORK/server.log" | tail -20
  exit 1
fi

RC=0
python3 "$ROOT/scripts/abuse.py" --port "$PORT" --pid "$SERVER_PID" --data-dir "$DATA" \
  --seconds "$SECONDS_TO_RUN" --txn-timeout "$TXN_TIMEOUT" --statement-timeout "$STATEMENT_TIMEOUT" \
  --max-body-size "$MAX_BODY_SIZE" --rss-limit-mib "$RSS_LIMIT" || RC=$?

# A panic anywhere in the server (the SQL workers log theirs at error level) is a failure.
PANICS="$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/server.log" | grep -c -E 'panicked|worker job panicked' || true)"
if [[ "$PANICS" != "0" ]]; then
  echo "abuse: FAILED: the server log shows $PANICS panic(s):"
  sed 's/\x1b\[[0-9;]*m//g' "$WORK/server.log" | grep -E -A3 'panicked' | head -20
  RC=1
fi
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "abuse: FAILED: the server exited"
  RC=1
fi
if [[ $RC -ne 0 ]]; then
  echo "--- last lines of the server log ---"
  sed 's/\x1b\[[0-9;]*m//g' "$WORK/server.log" | tail -n 15
fi
# One line the suite's summary understands.
if [[ $RC -eq 0 ]]; then echo "abuse: 1 passed, 0 failed"; else echo "abuse: 0 passed, 1 failed"; fi
exit $RC
