#!/usr/bin/env bash
# Measures `skylite db import` of a generated database (default 1 GB): wall time, MB/s, and the
# peak RSS of the CLI and of the server (from /usr/bin/time or /proc), next to `sqlite3 .backup`
# of the same file when sqlite3 is installed. Not part of scripts/test.sh (it takes a while).
#   SIZE_MB=1024 BIN=target/release/skylite scripts/measure_import.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BIN:-$ROOT/target/release/skylite}"
SIZE_MB="${SIZE_MB:-1024}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/skylite-measure.XXXXXX")"
SERVER_PID=""
cleanup() { [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

echo "generating a ${SIZE_MB} MB database in $WORK/big.db"
python3 - "$WORK/big.db" "$SIZE_MB" <<'PY'
import os, sqlite3, sys
path, mb = sys.argv[1], int(sys.argv[2])
db = sqlite3.connect(path)
db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
                 "CREATE TABLE blobs (id INTEGER PRIMARY KEY, tag TEXT, body BLOB);"
                 "CREATE INDEX blobs_tag ON blobs(tag);")
row = 4000
for i in range(0, mb * 1024 * 1024 // row, 10000):
    db.executemany("INSERT INTO blobs (tag, body) VALUES (?, ?)",
                   ((f"tag{j % 997}", os.urandom(row)) for j in range(i, i + 10000)))
    db.commit()
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.close()
PY
ls -l "$WORK/big.db"
BYTES=$(stat -c %s "$WORK/big.db")

ADMIN=$("$BIN" token create --data-dir "$WORK/data" --admin 2>/dev/null)
"$BIN" serve --listen 127.0.0.1:18931 --data-dir "$WORK/data" 2>"$WORK/serve.log" &
SERVER_PID=$!
sleep 1
peak_server() { awk '/VmHWM/ {print $2}' /proc/"$SERVER_PID"/status; }

start=$(date +%s.%N)
/usr/bin/time -v "$BIN" db import "$WORK/big.db" --name big --url http://127.0.0.1:18931 --token "$ADMIN" \
  2> "$WORK/cli.time" || { cat "$WORK/cli.time"; exit 1; }
end=$(date +%s.%N)
secs=$(echo "$end - $start" | bc)
cli_kb=$(awk -F: '/Maximum resident/ {gsub(/ /, "", $2); print $2}' "$WORK/cli.time")
echo "skylite db import: $BYTES bytes in ${secs}s = $(echo "$BYTES / 1000000 / $secs" | bc -l | cut -c1-6) MB/s;" \
     "peak RSS CLI $((cli_kb / 1024)) MB, server $(( $(peak_server) / 1024 )) MB"

if command -v sqlite3 >/dev/null; then
  start=$(date +%s.%N)
  /usr/bin/time -v sqlite3 "$WORK/big.db" ".backup '$WORK/backup.db'" 2> "$WORK/sqlite.time"
  end=$(date +%s.%N)
  secs=$(echo "$end - $start" | bc)
  kb=$(awk -F: '/Maximum resident/ {gsub(/ /, "", $2); print $2}' "$WORK/sqlite.time")
  echo "sqlite3 .backup (local copy): ${secs}s = $(echo "$BYTES / 1000000 / $secs" | bc -l | cut -c1-6) MB/s; peak RSS $((kb / 1024)) MB"
fi
