#!/usr/bin/env bash
# Runs every Outrigger check: format, lints and all tests.
#
# Installs what the tests need on a fresh machine (as root on CI: apt-get and
# pip work), reuses it on later runs, and stops whatever it started on exit.
#   - a Python venv with the official Dapr SDK (dapr[grpc,workflow,fastapi]==1.19.0):
#     the wire-compatibility test compares its shipped descriptors with ours,
#     and the gateway's end-to-end tests drive the gateway with it;
#   - a throwaway PostgreSQL server on loopback (OUTRIGGER_POSTGRES_URL);
#   - one shared cargo target dir outside the clone, so every test shares one build.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${OUTRIGGER_CACHE:-$HOME/.cache/outrigger}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outrigger-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$CACHE"

step() { printf '\n=== %s ===\n' "$*"; }

# --- Python venv with the Dapr SDK -----------------------------------------
DAPR_SDK_VERSION=1.19.0
VENV="$CACHE/venv"
DAPR_SDK="dapr[grpc,workflow,fastapi]==$DAPR_SDK_VERSION"
if ! "$VENV/bin/python" -c "import dapr.version, fastapi, sys; sys.exit(dapr.version.__version__ != '$DAPR_SDK_VERSION')" 2>/dev/null; then
  step "installing $DAPR_SDK into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$DAPR_SDK"
fi
export OUTRIGGER_PYTHON="$VENV/bin/python"

# --- PostgreSQL on loopback, in a temp folder, stopped on exit ----------------
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [ -z "$(pg_bin)" ]; then
  step "installing postgresql"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
PG_BIN="$(pg_bin)"
PG_DIR="$(mktemp -d)"
PG_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
chown postgres: "$PG_DIR"
stop_postgres() {
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}
trap stop_postgres EXIT
step "starting PostgreSQL ($("$PG_BIN/postgres" --version)) on 127.0.0.1:$PG_PORT"
runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 30 \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >/dev/null
export OUTRIGGER_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
# The restart test runs a server of its own with these binaries.
export OUTRIGGER_PG_BIN="$PG_BIN"

# --- Rust checks -------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
