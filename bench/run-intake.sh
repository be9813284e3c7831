#!/usr/bin/env bash
# Durable intake of single-event POSTs over 32 connections (quality.md's first speed figure).
# Usage: bench/run-intake.sh [seconds]   (needs wrk from Debian's packages and a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
data=$(mktemp -d)
./target/release/casebridge serve --bind 127.0.0.1:18282 --data-dir "$data" >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 50); do curl -sf http://127.0.0.1:18282/readyz >/dev/null && break; sleep 0.1; done
wrk -t2 -c32 -d"${secs}s" -s bench/intake.lua http://127.0.0.1:18282/v1/events
