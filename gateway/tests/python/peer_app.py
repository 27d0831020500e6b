"""One of two HTTP apps, each under its own `outrigger run`, that call each
other by app id through their gateways: with the official SDK's
DaprClient.invoke_method and with a plain HTTP request to the gateway's
/v1.0/invoke API. Each app exits once it has made all its calls and its peer
has made all of its calls to it."""

import json
import os
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dapr.clients import DaprClient

ME = os.environ["APP_ID"]
PEER = os.environ["PEER_APP_ID"]
called_by = set()
lock = threading.Lock()


class App(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        with lock:
            called_by.add((body.get("from"), body.get("via")))
        if self.path != "/hello":
            self.send_response(404)
            self.end_headers()
            return
        reply = json.dumps({"me": ME, "got": body}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["APP_PORT"])), App)
threading.Thread(target=server.serve_forever, daemon=True).start()


def until(deadline, what, attempt):
    """Retry `attempt` until it returns a value: the peer may start later."""
    last = None
    while time.time() < deadline:
        try:
            return attempt()
        except Exception as err:  # noqa: BLE001 - the peer is not up yet
            last = err
            time.sleep(0.2)
    raise AssertionError(f"{ME}: {what} never succeeded: {last!r}")


deadline = time.time() + 60

with DaprClient() as d:
    def by_sdk():
        resp = d.invoke_method(
            PEER,
            "hello",
            data=json.dumps({"from": ME, "via": "sdk"}),
            content_type="application/json",
            http_verb="POST",
        )
        return resp.json()

    got = until(deadline, "invoke_method", by_sdk)
    assert got == {"me": PEER, "got": {"from": ME, "via": "sdk"}}, got

url = f"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}/v1.0/invoke/{PEER}/method/hello"


def by_http():
    request = urllib.request.Request(
        url,
        data=json.dumps({"from": ME, "via": "http"}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200, resp.status
        return json.loads(resp.read())


got = until(deadline, "HTTP /v1.0/invoke", by_http)
assert got == {"me": PEER, "got": {"from": ME, "via": "http"}}, got

# An unknown method of the peer comes back as the peer app's 404.
try:
    urllib.request.urlopen(
        urllib.request.Request(
            url.replace("/hello", "/nothing"),
            data=json.dumps({"from": ME, "via": "404"}).encode(),
            method="POST",
        ),
        timeout=5,
    )
    raise AssertionError("the peer's 404 did not come back")
except urllib.error.HTTPError as err:
    assert err.code == 404, err.code

while time.time() < deadline:
    with lock:
        # Every call the peer makes, so neither app exits while the other
        # still has a call for it to answer.
        if called_by >= {(PEER, "sdk"), (PEER, "http"), (PEER, "404")}:
            break
    time.sleep(0.1)
else:
    raise AssertionError(f"{ME}: the peer did not call both ways: {called_by}")

print(f"peer app {ME} checks passed", flush=True)
server.shutdown()
