"""A minimal Dapr-style app for docker/compose.yaml (standard library only).

It subscribes to topic `orders` on pub/sub `pubsub` and stores every order it
receives under state key `last-order` of store `statestore`, both through its
gateway's HTTP API (DAPR_HTTP_PORT, default 3500, on 127.0.0.1: the app shares
the gateway's network). With PUBLISH_EVERY=N (seconds) it also publishes an
order every N seconds, so `docker compose up` shows the round trip in the logs.
scripts/containers.sh runs this same file on the host against the gateway
container to test delivery.
"""

import json
import os
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

APP_PORT = int(os.environ.get("APP_PORT", "8080"))
DAPR = f"http://127.0.0.1:{os.environ.get('DAPR_HTTP_PORT', '3500')}"
PUBLISH_EVERY = float(os.environ.get("PUBLISH_EVERY", "0"))


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(DAPR + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status


class App(BaseHTTPRequestHandler):
    def reply(self, status, body):
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        if self.path == "/dapr/subscribe":
            self.reply(200, [{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}])
        else:
            self.reply(404, {})

    def do_POST(self):
        if self.path != "/orders":
            self.reply(404, {})
            return
        event = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
        order = event.get("data")
        print(f"app: received order {order}", flush=True)
        try:
            call("POST", "/v1.0/state/statestore", [{"key": "last-order", "value": order}])
            self.reply(200, {"status": "SUCCESS"})
        except OSError as err:
            print(f"app: saving the order failed ({err}); asking for a retry", flush=True)
            self.reply(200, {"status": "RETRY"})

    def log_message(self, *_):
        pass


def publish_forever():
    n = 0
    while True:
        time.sleep(PUBLISH_EVERY)
        n += 1
        try:
            call("POST", "/v1.0/publish/pubsub/orders", {"id": n})
            print(f"app: published order {n}", flush=True)
        except OSError as err:
            print(f"app: publish failed: {err}", flush=True)


if __name__ == "__main__":
    if PUBLISH_EVERY > 0:
        threading.Thread(target=publish_forever, daemon=True).start()
    print(f"app: listening on 127.0.0.1:{APP_PORT}, gateway {DAPR}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", APP_PORT), App).serve_forever()
