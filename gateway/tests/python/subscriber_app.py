"""A subscriber app built with the official SDK (`dapr.ext.fastapi`), started
by `outrigger run --app-port`. It publishes through the gateway with
DaprClient and checks what the gateway delivers back: a RETRY answer is
followed by a redelivery, a DROP answer sends the event to the dead-letter
topic, and `/dapr/subscribe` is what the gateway used."""

import json
import os
import threading
import time

import uvicorn
from dapr.clients import DaprClient
from dapr.ext.fastapi import DaprApp
from fastapi import FastAPI, HTTPException

app = FastAPI()
dapr_app = DaprApp(app)
seen = {"orders": [], "bad": [], "poison": [], "clock": [], "bulk": [], "fails": [], "failed": [], "raw": []}
lock = threading.Lock()


@dapr_app.subscribe(pubsub="pubsub", topic="orders")
def orders(event: dict):
    with lock:
        seen["orders"].append(event)
        first = len(seen["orders"]) == 1
    return {"status": "RETRY" if first else "SUCCESS"}


@dapr_app.subscribe(pubsub="pubsub", topic="bad", dead_letter_topic="poison")
def bad(event: dict):
    with lock:
        seen["bad"].append(event)
    return {"status": "DROP"}


@dapr_app.subscribe(pubsub="pubsub", topic="poison")
def poison(event: dict):
    with lock:
        seen["poison"].append(event)
    return {"status": "SUCCESS"}


@dapr_app.subscribe(pubsub="pubsub", topic="bulk")
def bulk(event: dict):
    with lock:
        seen["bulk"].append(event)
    return {"status": "SUCCESS"}


@dapr_app.subscribe(pubsub="pubsub", topic="always-fails", dead_letter_topic="failed")
def always_fails(event: dict):
    # A 500 every time: the Resiliency retry policy (maxRetries: 2) runs out,
    # and the event goes to the dead-letter topic.
    with lock:
        seen["fails"].append(event)
    raise HTTPException(status_code=500, detail="broken on purpose")


@dapr_app.subscribe(pubsub="pubsub", topic="failed")
def failed(event: dict):
    with lock:
        seen["failed"].append(event)
    return {"status": "SUCCESS"}


@dapr_app.subscribe(pubsub="pubsub", topic="raw", metadata={"rawPayload": "true"})
def raw(event: dict):
    with lock:
        seen["raw"].append(event)
    return {"status": "SUCCESS"}


@app.post("/clock")
def clock():
    # The cron input binding (route /clock) fires into the app.
    with lock:
        seen["clock"].append(time.time())
    return {}


port = int(os.environ["APP_PORT"])
server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
threading.Thread(target=server.run, daemon=True).start()

with DaprClient() as d:
    # The gateway subscribes once the app answers /dapr/subscribe.
    time.sleep(1.5)
    d.publish_event("pubsub", "orders", json.dumps({"order": 1}), data_content_type="application/json")
    d.publish_event("pubsub", "bad", json.dumps({"bad": True}), data_content_type="application/json")
    reply = d.publish_events("pubsub", "bulk", [json.dumps({"b": i}) for i in range(3)], data_content_type="application/json")
    assert not reply.failed_entries, reply.failed_entries
    d.publish_event("pubsub", "always-fails", json.dumps({"doomed": True}), data_content_type="application/json")
    d.publish_event("pubsub", "raw", b"raw bytes", publish_metadata={"rawPayload": "true"})

deadline = time.time() + 30
while time.time() < deadline:
    with lock:
        if len(seen["orders"]) >= 2 and seen["poison"] and len(seen["clock"]) >= 2 and len(seen["bulk"]) >= 3 and seen["failed"] and seen["raw"]:
            break
    time.sleep(0.1)

with lock:
    assert len(seen["orders"]) >= 2, f"RETRY must be redelivered: {seen['orders']}"
    assert seen["orders"][0]["data"] == {"order": 1}, seen["orders"][0]
    assert seen["orders"][0]["topic"] == "orders" and seen["orders"][0]["source"] == "e2e-app"
    assert seen["orders"][0]["id"] == seen["orders"][1]["id"], "a redelivery is the same event"
    assert len(seen["bad"]) == 1, seen["bad"]
    assert seen["poison"] and seen["poison"][0]["data"] == {"bad": True}, seen["poison"]
    assert sorted(e["data"]["b"] for e in seen["bulk"]) == [0, 1, 2], seen["bulk"]
    assert len(seen["fails"]) == 3, f"maxRetries: 2 is three attempts, not {len(seen['fails'])}: {[e.get('id') for e in seen['fails']]}"
    assert seen["failed"][0]["data"] == {"doomed": True}, seen["failed"]
    import base64
    assert base64.b64decode(seen["raw"][0]["data_base64"]) == b"raw bytes", seen["raw"]
    assert len(seen["clock"]) >= 2, f"the cron binding fired {len(seen['clock'])} times"
server.should_exit = True
print("subscriber app checks passed")
