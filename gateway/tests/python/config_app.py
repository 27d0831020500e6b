"""An app under `outrigger run` with `configstore` (configuration.postgresql)
and `pgdb` (bindings.postgresql) on one PostgreSQL table. It writes the
table through the binding, reads it with the official SDK's
get_configuration, and checks that changes reach it both over the gRPC
subscription stream (subscribe_configuration) and as HTTP calls to the app
(GET /v1.0/configuration/.../subscribe → POST /configuration/{store}/{key})."""

import json
import os
import queue
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from dapr.clients import DaprClient

TABLE = os.environ["CONFIG_TABLE"]
HTTP = f"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}"
posted = queue.Queue()


class App(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        posted.put((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def do_GET(self):  # /dapr/subscribe and friends: nothing to declare
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["APP_PORT"])), App)
threading.Thread(target=server.serve_forever, daemon=True).start()


def sql(d, statement, params):
    d.invoke_binding("pgdb", "exec", binding_metadata={"sql": statement, "params": json.dumps(params)})


def upsert(d, key, value, version):
    sql(
        d,
        f"INSERT INTO {TABLE} (key, value, version, metadata) VALUES ($1, $2, $3, '{{\"team\":\"ops\"}}') "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version",
        [key, value, version],
    )


def http_get(path):
    try:
        with urllib.request.urlopen(HTTP + path, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


with DaprClient() as d:
    upsert(d, "color", "red", "1")
    upsert(d, "size", "L", "1")

    got = d.get_configuration("configstore", ["color", "size", "absent"])
    assert set(got.items) == {"color", "size"}, got.items
    assert got.items["color"].value == "red" and got.items["color"].version == "1"
    assert got.items["color"].metadata == {"team": "ops"}, got.items["color"].metadata

    status, body = http_get("/v1.0/configuration/configstore?key=size")
    assert status == 200 and json.loads(body)["size"]["value"] == "L", (status, body)
    status, _ = http_get("/v1.0/configuration/configstore?key=absent")
    assert status == 204, status
    status, body = http_get("/v1.0/configuration/nosuchstore?key=size")
    assert status == 400 and json.loads(body)["errorCode"] == "ERR_CONFIGURATION_STORE_NOT_FOUND", body
    try:
        d.get_configuration("nosuchstore", ["color"])
        raise AssertionError("unknown configuration store accepted")
    except grpc.RpcError as err:  # this rpc raises the raw gRPC error
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.code()

    # gRPC subscription: the SDK's handler sees the change made after subscribing.
    seen = queue.Queue()
    sub_id = d.subscribe_configuration(
        "configstore", ["color"], lambda _id, resp: seen.put(dict(resp.items))
    )
    assert sub_id, "subscription id"
    upsert(d, "size", "XL", "2")  # not subscribed: must not arrive
    upsert(d, "color", "blue", "2")
    items = seen.get(timeout=15)
    assert set(items) == {"color"}, items
    assert items["color"].value == "blue" and items["color"].version == "2", items
    assert d.unsubscribe_configuration("configstore", sub_id) is True
    assert d.unsubscribe_configuration("configstore", "no-such-id") is False

    # HTTP subscription: the change is POSTed to the app.
    status, body = http_get("/v1.0/configuration/configstore/subscribe?key=color")
    assert status == 200, (status, body)
    http_id = json.loads(body)["id"]
    upsert(d, "color", "green", "3")
    path, event = posted.get(timeout=15)
    assert path == "/configuration/configstore/color", path
    assert event["id"] == http_id and event["items"]["color"]["value"] == "green", event
    status, body = http_get(f"/v1.0/configuration/configstore/{http_id}/unsubscribe")
    assert status == 200 and json.loads(body) == {"ok": True}, (status, body)
    status, body = http_get(f"/v1.0/configuration/configstore/{http_id}/unsubscribe")
    assert status == 500 and json.loads(body)["ok"] is False, (status, body)

    # After unsubscribing, changes stop arriving.
    upsert(d, "color", "black", "4")
    time.sleep(1)
    assert posted.empty(), posted.get()
    assert seen.empty(), seen.get()

print("configuration app checks passed", flush=True)
server.shutdown()
