#!/usr/bin/env bash
# This machine against quality.md's reference ("a do-nothing HTTP handler on loopback answers
# about 160,000 small POSTs/s; SQLite commits about 5,500 single-row durable transactions/s
# and about 74,000 rows/s when 16 rows share a durable commit"), and casebridge's intake
# measured by the same external client as the do-nothing handler.
#
#     bench/calibrate.sh            # needs wrk (Debian: apt-get install wrk) and a release build
#
# wrk (one C thread) costs the machine less than `loadgen`'s client, so its
# do-nothing figure is closer to the handler's own ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example do_nothing -p casebridge >/dev/null
cargo build --release -p casebridge >/dev/null
command -v wrk >/dev/null || { echo "wrk is not installed (Debian: apt-get install wrk)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
./target/release/examples/do_nothing 127.0.0.1:7071 >/dev/null &
./target/release/casebridge serve --bind 127.0.0.1:7072 --data-dir "$tmp/data" >"$tmp/serve.log" 2>&1 &
for port in 7071 7072; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done
echo "SQLite on this disk:"
python3 bench/sqlite_commits.py "$tmp"
echo "Single-event POSTs, 32 connections, 5 s each, interleaved (wrk, one thread):"
for round in 1 2 3; do
  for target in do-nothing:7071 casebridge:7072; do
    out=$(wrk -t1 -c32 -d5s -s bench/calibrate_intake.lua "http://127.0.0.1:${target#*:}")
    rate=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    refused=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    echo "  round $round, ${target%%:*}: $rate requests/s${refused:+, $refused not answered 2xx}"
  done
done
