#!/usr/bin/env bash
# Instructions the gateway executes per request, counted by valgrind's
# callgrind: unlike wall-clock figures on this shared VM, the count repeats
# run after run, so it shows what a change to the gateway's code saved.
#
#   scripts/instructions.sh            # every row below
#   scripts/instructions.sh state      # HTTP GET /v1.0/state/{store}/{key}
#   scripts/instructions.sh grpc       # gRPC Dapr/GetState
#   scripts/instructions.sh actor      # HTTP PUT /v1.0/actors/{type}/{id}/method/{m}, warm ids
#   scripts/instructions.sh invoke     # HTTP POST /v1.0/invoke/callee/method/echo: the calling gateway
#   scripts/instructions.sh invoked    # the same call: the called gateway, in front of the app
#
# The gateway (release build) runs under callgrind in front of outrigger-local
# (and, for the actor row, the actors benchmark's app). Python's http.client
# (for the grpc row, the Dapr SDK's generated stub, from the venv
# scripts/test.sh makes, or $OUTRIGGER_PYTHON) sends N requests on one connection; the gateway's count at N = 2 500 minus
# its count at N = 500, over 2 000, is the cost of one request (start-up and
# shutdown cancel out). Needs valgrind and python3.
#
#   PROFILE=name   cargo profile the gateway is built with (default release)
#   KEEP=dir       keep callgrind's output files there, for callgrind_annotate
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outrigger-target}"
[ $# -gt 0 ] || set -- state grpc actor invoke invoked

command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
PROFILE="${PROFILE:-release}"
cargo build --profile "$PROFILE" -q -p outrigger -p outrigger-local
cargo bench -q -p outrigger --bench actors --bench invoke --no-run 2>/dev/null
BIN="$CARGO_TARGET_DIR/$PROFILE"
ACTORS_BENCH=$(ls -t "$CARGO_TARGET_DIR"/release/deps/actors-* | grep -v '\.d$' | head -1)
INVOKE_BENCH=$(ls -t "$CARGO_TARGET_DIR"/release/deps/invoke-* | grep -v '\.d$' | head -1)

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/sockets" "$WORK/resources"
export DAPR_COMPONENTS_SOCKETS_FOLDER="$WORK/sockets"
cat > "$WORK/resources/store.yaml" <<EOF
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.sqlite
  version: v1
  metadata:
  - name: connectionString
    value: $WORK/state.db
  - name: actorStateStore
    value: "true"
EOF
"$BIN/outrigger-local" >"$WORK/local.log" 2>&1 &
PIDS+=($!)
APP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
OUTRIGGER_BENCH_ACTOR_APP_PORT=$APP_PORT "$ACTORS_BENCH" --bench >"$WORK/app.log" 2>&1 &
PIDS+=($!)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# For the invoke rows: the invoke benchmark's echo app, and a second gateway
# (`peer`) sharing the gateways' registry folder. For `invoke` the gateway
# counted calls `peer`, which fronts the echo app; for `invoked` the counted
# gateway fronts the echo app and `peer` calls it.
ECHO_PORT=$(free_port)
OUTRIGGER_BENCH_APP_PORT=$ECHO_PORT "$INVOKE_BENCH" --bench >"$WORK/echo.log" 2>&1 &
PIDS+=($!)
mkdir -p "$WORK/empty" "$WORK/registry"
PEER_PORT=$(free_port)
peer() { # app-id [app-port]
  "$BIN/outrigger" --app-id "$1" ${2:+--app-port "$2"} --dapr-http-port "$PEER_PORT" \
    --dapr-grpc-port "$(free_port)" --metrics-port 0 --resources-path "$WORK/empty" \
    --registry-folder "$WORK/registry" >"$WORK/peer.log" 2>&1 &
  PEER=$!
  PIDS+=($PEER)
  for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$PEER_PORT/v1.0/healthz" && return
    sleep 0.1
  done
}
HTTP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
GRPC_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cat > "$WORK/client.py" <<'EOF'
import http.client, sys
row, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
if row == "grpc":
    import grpc
    from dapr.proto import api_v1, api_service_v1
    assert c.request("POST", "/v1.0/state/statestore", b'[{"key":"k","value":"hello"}]') is None
    assert c.getresponse().status == 204
    stub = api_service_v1.DaprStub(grpc.insecure_channel("127.0.0.1:%d" % int(sys.argv[4])))
    for _ in range(n):
        assert stub.GetState(api_v1.GetStateRequest(store_name="statestore", key="k")).data == b'"hello"'
    sys.exit(0)
def call(method, path, body=None):
    c.request(method, path, body=body, headers={"content-type": "application/json"})
    r = c.getresponse(); r.read()
    return r.status
if row in ("invoke", "invoked"):
    path = "/v1.0/invoke/callee/method/echo"
    if row == "invoked":
        c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[5]))
    for _ in range(n):
        assert call("POST", path, b'{"order":42}') == 200
    sys.exit(0)
if row == "state":
    assert call("POST", "/v1.0/state/statestore", b'[{"key":"k","value":"hello"}]') == 204
    for _ in range(n):
        assert call("GET", "/v1.0/state/statestore/k") == 200
else:
    for i in range(10):  # activate the ten ids first
        assert call("PUT", "/v1.0/actors/Bench/a-%d/method/work" % i, b'{"n":42}') == 200
    for i in range(n):
        assert call("PUT", "/v1.0/actors/Bench/a-%d/method/work" % (i % 10), b'{"n":42}') == 200
EOF

# The gateway's instruction count for `n` requests of `row`.
count() {
  local row=$1 n=$2 out="$WORK/callgrind.$1.$2" app_id=bench app_port=$APP_PORT
  case $row in
    invoke) peer callee "$ECHO_PORT"; app_id=caller; app_port= ;;
    invoked) peer caller; app_id=callee; app_port=$ECHO_PORT ;;
  esac
  valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN/outrigger" --app-id "$app_id" \
    ${app_port:+--app-port "$app_port"} --dapr-http-port "$HTTP_PORT" --dapr-grpc-port "$GRPC_PORT" --metrics-port 0 \
    --resources-path "$WORK/resources" --registry-folder "$WORK/registry" >"$WORK/gateway.$row.$n.log" 2>&1 &
  local gw=$!
  for _ in $(seq 300); do
    case $row in
      invoke*) curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/v1.0/healthz/outbound" && break ;;
      *) curl -sf "http://127.0.0.1:$HTTP_PORT/v1.0/metadata" | grep -q '"hostReady":true' && break ;;
    esac
    sleep 0.2
  done
  "${OUTRIGGER_PYTHON:-$HOME/.cache/outrigger/venv/bin/python}" "$WORK/client.py" "$row" "$HTTP_PORT" "$n" "$GRPC_PORT" "$PEER_PORT"
  kill -INT "$gw"
  wait "$gw" || true
  if [ -n "${PEER:-}" ]; then kill -INT "$PEER"; wait "$PEER" || true; PEER=; fi
  [ -z "${KEEP:-}" ] || { mkdir -p "$KEEP"; cp "$out" "$KEEP/"; }
  awk '/^summary:/ {print $2}' "$out"
}

for row in "$@"; do
  low=$(count "$row" 500)
  high=$(count "$row" 2500)
  echo "$row: $(( (high - low) / 2000 )) instructions per request in the gateway"
done
