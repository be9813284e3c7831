#!/usr/bin/env bash
# The speed rows of quality.md, measured with `casebridge loadgen` (release build).
#
#   bench/speed.sh [sqlite|postgres|all]
#
# For each backend: durable intake of single-event POSTs over 32 connections against a
# do-nothing handler in the same run (5 interleaved rounds, medians); end to end on the
# built-in CRM at the most the server takes (3 rounds) and at fixed rates below that, with
# percentiles of event accepted → CRM write done; a run with SIGKILLs checked by the oracle.
# PostgreSQL runs on a fresh database of the server at $CASEBRIDGE_TEST_DATABASE_URL (default
# postgres://postgres@127.0.0.1:5432/postgres), created and dropped with psql.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./target/release/casebridge
what=${1:-all}
admin=${CASEBRIDGE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}

run() {
    echo "\$ casebridge loadgen $*"
    "$bin" loadgen "$@" 2>&1 | grep -v '^20..-' | sed 's/^/    /'
}

backend() {
    local name=$1
    shift
    echo "== $name ($(nproc) CPUs, $(date -u +%F))"
    run --traffic intake --duration 5 --baseline --rounds 5 "$@"
    run --sessions 5000 --rounds 3 "$@"
    for rate in 200 300; do
        run --rate "$rate" --duration 20 --connections 64 "$@"
    done
}

if [[ $what == sqlite || $what == all ]]; then
    backend "SQLite"
    echo "== SQLite, SIGKILLed every ~8 s, then the oracle"
    run --rate 150 --duration 60 --verify --kill-every 8
fi

if [[ $what == postgres || $what == all ]]; then
    db="cb_speed_$$"
    psql "$admin" -q -c "CREATE DATABASE $db"
    trap 'psql "$admin" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
    url="${admin%/*}/$db"
    backend "PostgreSQL, one node" --database-url "$url"
fi
