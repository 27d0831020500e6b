#!/usr/bin/env bash
# Builds Outrigger's five container images without a Docker engine (buildah),
# and tests them for real with podman.
#
#   bash scripts/containers.sh build   # static binaries + images, nothing else
#   bash scripts/containers.sh test    # build, then run and check them (default)
#
# build: one `cargo build --release` of all five binaries, static (glibc's
#   crt-static on the gnu target; no musl needed) and stripped, into the shared
#   target dir; docker/rootfs.sh lays them out with the image skeleton; buildah
#   builds each final target of docker/Dockerfile from them, tagged
#   localhost/<binary>:$OUTRIGGER_IMAGE_TAG (default dev).
# test: each image is under 30 MB, runs as a numeric non-root user, has labels
#   and a HEALTHCHECK; outrigger-local and the gateway run as two containers
#   sharing a socket folder on the host network; the gateway is ready in under
#   1 s from container start; state save/get and publish work from outside,
#   and a published event reaches an app on the host (docker/app/app.py),
#   which saves it through the gateway. With OUTRIGGER_POSTGRES_URL and
#   OUTRIGGER_NATS_URL set (scripts/test.sh sets both), outrigger-postgres and
#   outrigger-nats containers serve a PostgreSQL store and JetStream pub/sub too,
#   reached by the name `localhost` (static glibc's resolver at work). Every
#   component image starts and passes its health check, every process runs as
#   uid 65532, a gateway loads docker/resources/ (the compose file's resources),
#   and both compose files pass `podman-compose config` and structural checks.
#
# Needs: podman, buildah, runc (Debian packages), python3, curl. Containers run
# on the runc runtime with no default ulimits (this sandbox refuses setrlimit);
# see ../shared/research/backends.md. Every container is named and removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE="${1:-test}"
case "$MODE" in
  build | test) ;;
  *)
    echo "usage: $0 [build|test]" >&2
    exit 64
    ;;
esac

BINARIES=(outrigger outrigger-local outrigger-postgres outrigger-nats outrigger-servicebus)
TAG="${OUTRIGGER_IMAGE_TAG:-dev}"
MAX_IMAGE_BYTES=30000000 # 30 MB
MAX_READY_MS=1000
USER_ID=65532
CACHE="${OUTRIGGER_CACHE:-$HOME/.cache/outrigger}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outrigger-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
TARGET="$(rustc -vV | sed -n 's/^host: //p')"
RUN_ID="outrigger-ct-$$"

step() { printf '\n=== containers: %s ===\n' "$*"; }
fail() {
  printf '\ncontainers: FAILED: %s\n' "$*" >&2
  exit 1
}
image() { echo "localhost/$1:$TAG"; }

WORK="$(mktemp -d)"
# podman and buildah with the sandbox's settings: no default ulimits, runc.
printf '[containers]\ndefault_ulimits = []\n' >"$WORK/containers.conf"
export CONTAINERS_CONF="$WORK/containers.conf"
pm() { podman --runtime runc "$@"; }
CONTAINERS=()
APP_PID=""
BINS_IMAGE="localhost/outrigger-bins:$RUN_ID"
# buildah leaves a working container behind for the Dockerfile's `bins` alias
# stage (FROM an image, no instructions); remove those, then the image.
drop_bins() {
  local ids
  ids=$(buildah containers --filter "ancestor=$BINS_IMAGE" -q 2>/dev/null || true)
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086 # one id per word
    buildah rm $ids >/dev/null 2>&1 || true
  fi
  if pm image exists "$BINS_IMAGE" 2>/dev/null; then pm rmi "$BINS_IMAGE" >/dev/null 2>&1 || true; fi
}
COMPOSE=()
cleanup() {
  local name
  drop_bins
  if [ ${#COMPOSE[@]} -gt 0 ]; then "${COMPOSE[@]}" down -v >/dev/null 2>&1 || true; fi
  for name in "${CONTAINERS[@]}"; do
    pm stop -t 2 "$name" >/dev/null 2>&1 || true
    pm rm -f "$name" >/dev/null 2>&1 || true
  done
  if [ -n "$APP_PID" ]; then
    kill "$APP_PID" 2>/dev/null || true
    wait "$APP_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in podman buildah runc python3 curl; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install -y buildah podman runc curl)"
done
if ! pm info >"$WORK/podman-info" 2>&1; then
  cat "$WORK/podman-info" >&2
  printf '\n=== containers: SKIPPED: podman is installed but cannot run on this machine (podman info failed above) ===\n' >&2
  exit 0
fi

# --- static binaries -------------------------------------------------------------
step "static release build of ${BINARIES[*]} ($TARGET)"
# One invocation, so shared dependencies compile once. The profile is the
# workspace's release profile (fat LTO, one codegen unit: the images ship the
# binaries the benchmarks measure) with symbols stripped.
packages=()
for bin in "${BINARIES[@]}"; do packages+=(-p "$bin"); done
started=$SECONDS
RUSTFLAGS='-C target-feature=+crt-static' \
  CARGO_PROFILE_RELEASE_STRIP=true \
  cargo build --release --locked --target "$TARGET" "${packages[@]}"
BIN_DIR="$CARGO_TARGET_DIR/$TARGET/release"
echo "static release build: $((SECONDS - started)) s"
for bin in "${BINARIES[@]}"; do
  # A static-pie names no dynamic loader (its .interp, near the start, is absent).
  if head -c 4096 "$BIN_DIR/$bin" | grep -qa 'ld-linux'; then
    fail "$bin is dynamically linked; FROM scratch needs a static binary"
  fi
done

# --- images ----------------------------------------------------------------------
step "images (buildah, docker/Dockerfile)"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)"
REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
mkdir -p "$WORK/context" "$WORK/empty"
sh docker/rootfs.sh "$WORK/context/out" "$BIN_DIR"
bud() {
  buildah bud --isolation chroot --format docker --quiet \
    -f docker/Dockerfile \
    --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" "$@" >/dev/null
}
started=$SECONDS
# The images these tags name now: replaced below, and removed once untagged.
previous=()
for bin in "${BINARIES[@]}"; do
  previous+=("$(pm image inspect --format '{{.Id}}' "$(image "$bin")" 2>/dev/null || true)")
done
# The binaries and skeleton as one image; each target copies what it needs.
bud --target prebuilt -t "$BINS_IMAGE" "$WORK/context" || fail "building the prebuilt stage"
for bin in "${BINARIES[@]}"; do
  bud --build-arg "BINARIES=$BINS_IMAGE" --target "$bin" -t "$(image "$bin")" "$WORK/empty" ||
    fail "building image $(image "$bin")"
done
drop_bins
for id in "${previous[@]}"; do
  if [ -n "$id" ] && [ -z "$(pm image inspect --format '{{.RepoTags}}' "$id" 2>/dev/null | tr -d '[]')" ]; then
    pm rmi "$id" >/dev/null 2>&1 || true # still used by a container: leave it
  fi
done
echo "built ${#BINARIES[@]} images in $((SECONDS - started)) s"

# Size, user, labels, health check of every image.
printf '%-40s %9s  %-12s %s\n' image size user healthcheck
for bin in "${BINARIES[@]}"; do
  img="$(image "$bin")"
  pm image inspect "$img" >"$WORK/inspect.json"
  python3 - "$img" "$bin" "$MAX_IMAGE_BYTES" "$VERSION" "$WORK/inspect.json" <<'EOF' || fail "image $img does not pass its checks (above)"
import json, sys
img, binary, max_bytes, version, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
info = json.load(open(path))[0]
size, config = info["Size"], info["Config"]
user = config.get("User", "")
labels = config.get("Labels") or {}
health = (info.get("Healthcheck") or {}).get("Test") or []
print(f"{img:40} {size / 1e6:7.1f}MB  {user:12} {' '.join(health[1:])}")
problems = []
if size >= max_bytes:
    problems.append(f"is {size} bytes, over {max_bytes}")
uid = user.split(":")[0]
if not uid.isdigit() or int(uid) == 0:
    problems.append(f"user {user!r} is not a numeric non-root uid")
if health[:2] != ["CMD", f"/{binary}"] or health[2:] != ["healthcheck"]:
    problems.append(f"health check {health} is not [CMD /{binary} healthcheck]")
for key, want in [("org.opencontainers.image.title", binary),
                  ("org.opencontainers.image.version", version),
                  ("org.opencontainers.image.source", None),
                  ("org.opencontainers.image.revision", None)]:
    if not labels.get(key) or (want is not None and labels[key] != want):
        problems.append(f"label {key} is {labels.get(key)!r}")
for p in problems:
    print(f"  {img}: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
done

if [ "$MODE" = build ]; then
  exit 0
fi

# --- run them ----------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Host folders as the containers' volumes, owned by the containers' user: the
# components create their sockets in SOCKETS, the gateway connects to them.
SOCKETS="$WORK/sockets"
DATA="$WORK/data"
RESOURCES="$WORK/resources"
mkdir -p "$SOCKETS" "$DATA" "$RESOURCES"
chown "$USER_ID:$USER_ID" "$SOCKETS" "$DATA"
chmod 0775 "$SOCKETS"
cp docker/resources-local/*.yaml "$RESOURCES/"

# start NAME IMAGE [podman run options...] -- [container args...]
start() {
  local short="$1" name="$RUN_ID-$1" img="$2"
  shift 2
  local opts=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    opts+=("$1")
    shift
  done
  [ $# -gt 0 ] && shift
  CONTAINERS+=("$name")
  # podman says it cannot reach systemd to schedule health checks: expected
  # here (no systemd); `podman healthcheck run` below runs them on demand.
  pm run -d --name "$name" --network host \
    -v "$SOCKETS:/tmp/dapr-components-sockets" "${opts[@]}" "$img" "$@" \
    >/dev/null 2>"$WORK/$short.run.log" || {
    cat "$WORK/$short.run.log" >&2
    fail "podman run $name"
  }
}
logs() {
  local name="$1"
  [[ "$name" == "$RUN_ID"* ]] || name="$RUN_ID-$1"
  pm logs "$name" 2>&1 | tail -"${2:-20}" | sed "s/^/  [$1] /" >&2
}
# healthy NAME SECONDS: the image's own HEALTHCHECK passes within SECONDS.
healthy() {
  local name="$1" deadline=$((SECONDS + $2))
  [[ "$name" == "$RUN_ID"* ]] || name="$RUN_ID-$1"
  until pm healthcheck run "$name" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ] || [ "$(pm inspect --format '{{.State.Running}}' "$name")" != true ]; then
      logs "$1"
      echo "  last health check: $(pm inspect --format '{{json .State.Health.Log}}' "$name" | tail -c 600)" >&2
      local hint=""
      [[ "$1" == *gateway* ]] || hint="; a component's main must answer \`healthcheck\` with ComponentServer::healthcheck (component-sdk/README.md)"
      fail "$name did not become healthy within $2 s (its HEALTHCHECK: $(pm inspect --format '{{json .Config.Healthcheck.Test}}' "$name")$hint)"
    fi
    sleep 0.2
  done
}

step "component containers (socket folder shared with the host at $SOCKETS)"
start local "$(image outrigger-local)" -v "$DATA:/data" --
start postgres "$(image outrigger-postgres)" --
start nats "$(image outrigger-nats)" --
start servicebus "$(image outrigger-servicebus)" --
for c in local postgres nats servicebus; do
  healthy "$c" 15
  echo "outrigger-$c: healthy"
done
# shellcheck disable=SC2012 # a listing for the reader: owners and modes
ls -ln "$SOCKETS" | sed 's/^/  /'

# The test's own PostgreSQL and NATS, reached by host name: `localhost`
# resolves through the container's /etc/hosts with static glibc.
WITH_BACKENDS=0
if [ -n "${OUTRIGGER_POSTGRES_URL:-}" ] && [ -n "${OUTRIGGER_NATS_URL:-}" ]; then
  WITH_BACKENDS=1
  cat >"$RESOURCES/pgstore.yaml" <<EOF
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pgstore
spec:
  type: state.postgresql
  version: v1
  metadata:
  - name: connectionString
    value: "${OUTRIGGER_POSTGRES_URL//127.0.0.1/localhost}"
  - name: tableName
    value: containers_test
EOF
  cat >"$RESOURCES/natspubsub.yaml" <<EOF
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: natspubsub
spec:
  type: pubsub.jetstream
  version: v1
  metadata:
  - name: natsURL
    value: "${OUTRIGGER_NATS_URL//127.0.0.1/localhost}"
  - name: streamName
    value: containerstest
EOF
else
  echo "OUTRIGGER_POSTGRES_URL / OUTRIGGER_NATS_URL not set: outrigger-postgres and outrigger-nats only serve their sockets (scripts/test.sh sets both)"
fi

step "an app on the host (docker/app/app.py)"
APP_PORT="$(free_port)"
HTTP_PORT="$(free_port)"
GRPC_PORT="$(free_port)"
APP_PORT="$APP_PORT" DAPR_HTTP_PORT="$HTTP_PORT" python3 docker/app/app.py >"$WORK/app.log" 2>&1 &
APP_PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$APP_PORT/dapr/subscribe" >/dev/null && break
  kill -0 "$APP_PID" 2>/dev/null || { cat "$WORK/app.log" >&2; fail "the app did not start"; }
  sleep 0.05
done

step "gateway container: ready time"
# The poller starts first and notes when /v1.0/healthz first answers 204;
# the ready time counts from the container's start (State.StartedAt).
python3 - "$HTTP_PORT" >"$WORK/ready" <<'EOF' &
import sys, time, urllib.request, urllib.error
url = f"http://127.0.0.1:{sys.argv[1]}/v1.0/healthz"
deadline = time.time() + 60
while time.time() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 204:
                print(time.time_ns())
                sys.exit(0)
    except (urllib.error.URLError, OSError):
        pass
    time.sleep(0.002)
sys.exit(1)
EOF
POLLER=$!
started_ns=$(date +%s%N)
start gateway "$(image outrigger)" -v "$RESOURCES:/resources:ro" \
  -e "DAPR_HTTP_PORT=$HTTP_PORT" -e "DAPR_GRPC_PORT=$GRPC_PORT" -- \
  --app-id containers-test --app-port "$APP_PORT" --resources-path /resources --metrics-port 0
wait "$POLLER" || { logs gateway 40; fail "the gateway container never answered /v1.0/healthz with 204"; }
ready_ns=$(cat "$WORK/ready")
container_ns=$(pm inspect --format '{{.State.StartedAt.UnixNano}}' "$RUN_ID-gateway")
ready_ms=$(((ready_ns - container_ns) / 1000000))
podman_ms=$(((ready_ns - started_ns) / 1000000))
echo "gateway ready ${ready_ms} ms after its container started (${podman_ms} ms after \`podman run\` was called, podman's own set-up included)"
[ "$ready_ms" -lt "$MAX_READY_MS" ] || { logs gateway 40; fail "gateway took ${ready_ms} ms to be ready (limit ${MAX_READY_MS} ms)"; }
healthy gateway 5
echo "outrigger (gateway): healthy"

step "state and publish APIs, from outside"
API="http://127.0.0.1:$HTTP_PORT/v1.0"
# expect STATUS METHOD URL [BODY]: the answer's status must be STATUS; prints the body.
expect() {
  local want="$1" method="$2" url="$3" got
  local data=()
  if [ -n "${4:-}" ]; then data=(--data "$4"); fi
  got=$(curl -sS -o "$WORK/body" -w '%{http_code}' -X "$method" -H 'content-type: application/json' \
    "${data[@]}" "$url") || fail "$method $url: no answer"
  [ "$got" = "$want" ] || fail "$method $url answered $got, expected $want: $(cat "$WORK/body")"
  cat "$WORK/body"
}
same_json() { python3 -c 'import json,sys; sys.exit(json.loads(sys.argv[1]) != json.loads(sys.argv[2]))' "$1" "$2"; }

expect 204 POST "$API/state/statestore" '[{"key":"greeting","value":{"hello":"containers"}}]'
got=$(expect 200 GET "$API/state/statestore/greeting")
same_json "$got" '{"hello":"containers"}' || fail "state statestore/greeting read back $got"
echo "state: saved and read back through outrigger-local: $got"

expect 204 POST "$API/publish/pubsub/orders" '{"id":42,"item":"outrigger"}'
deadline=$((SECONDS + 15))
until got=$(curl -sf "$API/state/statestore/last-order") && [ -n "$got" ] && same_json "$got" '{"id":42,"item":"outrigger"}'; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    sed 's/^/  [app] /' "$WORK/app.log" >&2
    logs gateway 40
    fail "the published order never reached the app (state last-order: ${got:-none})"
  fi
  sleep 0.1
done
echo "publish: delivered to the app on the host, which saved it through the gateway: $got"

if [ "$WITH_BACKENDS" = 1 ]; then
  expect 204 POST "$API/state/pgstore" '[{"key":"pg","value":"from a container"}]'
  got=$(expect 200 GET "$API/state/pgstore/pg")
  same_json "$got" '"from a container"' || fail "state pgstore/pg read back $got"
  echo "state: saved and read back through outrigger-postgres (PostgreSQL at localhost): $got"
  expect 204 POST "$API/publish/natspubsub/containers" '{"via":"nats"}'
  echo "publish: accepted by outrigger-nats (JetStream at localhost)"
fi

step "processes run as uid $USER_ID"
for c in local postgres nats servicebus gateway; do
  name="$RUN_ID-$c"
  pid=$(pm inspect --format '{{.State.Pid}}' "$name")
  uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
  [ "$uids" = "$USER_ID $USER_ID $USER_ID $USER_ID" ] || fail "$name runs with uids $uids, expected $USER_ID"
  echo "$name: pid $pid, uid $USER_ID"
done

step "the compose file's resources (docker/resources) load in a gateway"
CHECK_PORT="$(free_port)"
start resources-check "$(image outrigger)" -v "$PWD/docker/resources:/resources:ro" \
  -e "DAPR_HTTP_PORT=$CHECK_PORT" -e "DAPR_GRPC_PORT=$(free_port)" -- \
  --app-id resources-check --resources-path /resources --metrics-port 0 --component-init-timeout 1
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$CHECK_PORT/v1.0/healthz/outbound" && break
  [ "$(pm inspect --format '{{.State.Running}}' "$RUN_ID-resources-check")" = true ] ||
    { logs resources-check 40; fail "a gateway with docker/resources/ exited"; }
  sleep 0.1
done
curl -sf "http://127.0.0.1:$CHECK_PORT/v1.0/metadata" >"$WORK/metadata.json" ||
  { logs resources-check 40; fail "a gateway with docker/resources/ does not serve /v1.0/metadata"; }
python3 - "$WORK/metadata.json" <<'EOF' || fail "docker/resources/ did not load as expected"
import json, sys
types = {c["name"]: c["type"] for c in json.load(open(sys.argv[1]))["components"]}
want = {"statestore": "state.postgresql", "pubsub": "pubsub.jetstream"}
print(f"components: {types} (their backends are the compose file's, unreachable here: not ready, as expected)")
sys.exit(0 if all(types.get(k) == v for k, v in want.items()) else 1)
EOF

step "compose files"
VENV="$CACHE/venv"
PODMAN_COMPOSE_VERSION=1.6.0
if ! "$VENV/bin/podman-compose" --version 2>/dev/null | grep -q "$PODMAN_COMPOSE_VERSION"; then
  echo "installing podman-compose==$PODMAN_COMPOSE_VERSION into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "podman-compose==$PODMAN_COMPOSE_VERSION" ||
    fail "pip install podman-compose==$PODMAN_COMPOSE_VERSION"
fi
for file in docker/compose.yaml docker/compose.local.yaml; do
  "$VENV/bin/podman-compose" -f "$file" config >"$WORK/config.yaml" 2>"$WORK/config.err" ||
    { cat "$WORK/config.err" >&2; fail "podman-compose config $file"; }
  "$VENV/bin/python" - "$file" "$WORK/config.yaml" <<'EOF' || fail "$file does not pass its checks (above)"
import os, sys, yaml
source, resolved = sys.argv[1], yaml.safe_load(open(sys.argv[2]))
services = resolved["services"]
problems = []
ours = {n: s for n, s in services.items() if "/outrigger" in s.get("image", "")}
if not ours:
    problems.append("no Outrigger service")
for name, svc in services.items():
    if "healthcheck" not in svc and svc.get("network_mode") is None:
        problems.append(f"{name}: no healthcheck")
    for dep, cond in (svc.get("depends_on") or {}).items():
        if dep not in services:
            problems.append(f"{name}: depends on unknown service {dep}")
        if (cond or {}).get("condition") != "service_healthy":
            problems.append(f"{name}: starts after {dep} without condition service_healthy")
for name, svc in ours.items():
    mounts = [str(v) for v in svc.get("volumes", [])]
    if not any("/tmp/dapr-components-sockets" in m for m in mounts):
        problems.append(f"{name}: the socket volume is not mounted")
    if name == "gateway":
        res = [m for m in mounts if ":/resources" in m]
        if not res or not res[0].endswith(":ro"):
            problems.append(f"gateway: resources not mounted read-only ({res})")
        for path in res:
            host = path.split(":")[0]
            host = host if os.path.isabs(host) else os.path.join(os.path.dirname(source), host)
            if not os.path.isdir(host):
                problems.append(f"gateway: resources folder {host} does not exist")
        if not any(str(d) in ours for d in svc.get("depends_on") or {}):
            problems.append("gateway: does not wait for any component")
if "sockets" not in (resolved.get("volumes") or {}):
    problems.append("no `sockets` volume")
for p in problems:
    print(f"  {source}: {p}", file=sys.stderr)
print(f"{source}: {len(services)} services ({', '.join(services)}), health-ordered, sockets shared, resources read-only")
sys.exit(1 if problems else 0)
EOF
done

step "docker/compose.local.yaml, up with podman-compose"
# podman-compose on podman 4.3 ignores `condition: service_healthy` (it says
# so), so the services come up one by one here, each once healthy; Docker
# Compose honours the conditions itself.
COMPOSE=("$VENV/bin/podman-compose" --podman-args=--runtime=runc -p "$RUN_ID" -f docker/compose.local.yaml)
COMPOSE_HTTP="$(free_port)"
COMPOSE_GRPC="$(free_port)"
export OUTRIGGER_TAG="$TAG" OUTRIGGER_HTTP_PORT="$COMPOSE_HTTP" OUTRIGGER_GRPC_PORT="$COMPOSE_GRPC"
for service in outrigger-local gateway; do
  "${COMPOSE[@]}" up -d "$service" >"$WORK/compose.log" 2>&1 ||
    { cat "$WORK/compose.log" >&2; fail "podman-compose up $service"; }
  healthy "${RUN_ID}_${service}_1" 15
  echo "$service: up and healthy"
done
API="http://127.0.0.1:$COMPOSE_HTTP/v1.0"
expect 204 POST "$API/state/statestore" '[{"key":"compose","value":"named volumes"}]'
got=$(expect 200 GET "$API/state/statestore/compose")
same_json "$got" '"named volumes"' || fail "state statestore/compose read back $got"
echo "state through the published port 127.0.0.1:$COMPOSE_HTTP: $got (sockets in a named volume owned by $USER_ID)"
"${COMPOSE[@]}" down -v >"$WORK/compose.log" 2>&1 || { cat "$WORK/compose.log" >&2; fail "podman-compose down"; }
COMPOSE=()

printf '\n=== containers: all checks passed (gateway ready in %s ms) ===\n' "$ready_ms"
