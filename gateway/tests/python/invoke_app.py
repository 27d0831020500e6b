"""An HTTP app under `outrigger run` that invokes a method of itself by app
id with the official SDK's DaprClient.invoke_method (HTTP invocation through
the gateway): verb, query, body and the app's status and headers pass
through; an app error reaches the SDK as an error."""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprHttpError


class App(BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("content-length", 0))
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/echo"):
            reply = json.dumps({"verb": self.command, "path": self.path, "body": body.decode()}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("x-app", "e2e")
        else:
            reply = b"no such method"
            self.send_response(404)
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["APP_PORT"])), App)
threading.Thread(target=server.serve_forever, daemon=True).start()

with DaprClient() as d:
    resp = d.invoke_method(
        os.environ["APP_ID"],
        "echo",
        data=json.dumps({"n": 1}),
        content_type="application/json",
        http_verb="PUT",
        http_querystring=(("size", "L"),),
    )
    got = resp.json()
    assert got == {"verb": "PUT", "path": "/echo?size=L", "body": '{"n": 1}'}, got
    assert resp.headers.get("x-app") == ["e2e"] or resp.headers.get("X-App") == ["e2e"], resp.headers

    try:
        d.invoke_method(os.environ["APP_ID"], "nothing-here", data="", http_verb="GET")
        raise AssertionError("a 404 from the app was not raised")
    except DaprHttpError as err:
        assert err.status_code == 404, err.status_code

print("invoke app checks passed", flush=True)
server.shutdown()
