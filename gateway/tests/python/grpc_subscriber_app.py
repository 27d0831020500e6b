"""A gRPC subscriber built with the official SDK (`dapr.ext.grpc`), started
by `outrigger run --app-protocol grpc`: the gateway lists its subscriptions
with ListTopicSubscriptions and delivers with OnTopicEvent; RETRY is
redelivered."""

import json
import os
import threading
import time

from cloudevents.sdk.event import v1
from dapr.clients import DaprClient
from dapr.clients.grpc._response import TopicEventResponse
from dapr.ext.grpc import App, Rule

app = App()
seen = []
lock = threading.Lock()


@app.subscribe(pubsub_name="pubsub", topic="orders")
def orders(event: v1.Event) -> TopicEventResponse:
    with lock:
        seen.append((event.EventID(), json.loads(event.Data())))
        first = len(seen) == 1
    return TopicEventResponse("retry" if first else "success")


ticks = []
routed = []


# Routing rules: CEL over the event, evaluated by the gateway.
@app.subscribe(pubsub_name="pubsub", topic="shapes", rule=Rule('event.data.kind == "circle"', 1))
def circles(event: v1.Event) -> TopicEventResponse:
    with lock:
        routed.append(("circle", json.loads(event.Data())))
    return TopicEventResponse("success")


@app.subscribe(pubsub_name="pubsub", topic="shapes")
def other_shapes(event: v1.Event) -> TopicEventResponse:
    with lock:
        routed.append(("other", json.loads(event.Data())))
    return TopicEventResponse("success")


@app.binding("clock")
def clock(request):
    # The cron input binding arrives through OnBindingEvent.
    with lock:
        ticks.append(time.time())


threading.Thread(target=app.run, args=(int(os.environ["APP_PORT"]),), daemon=True).start()

with DaprClient() as d:
    time.sleep(1.5)
    d.publish_event("pubsub", "orders", json.dumps({"order": 7}), data_content_type="application/json")
    d.publish_event("pubsub", "shapes", json.dumps({"kind": "circle"}), data_content_type="application/json")
    d.publish_event("pubsub", "shapes", json.dumps({"kind": "square"}), data_content_type="application/json")

deadline = time.time() + 30
while time.time() < deadline:
    with lock:
        if len(seen) >= 2 and len(ticks) >= 2 and len(routed) >= 2:
            break
    time.sleep(0.1)

with lock:
    assert len(seen) >= 2, f"RETRY must be redelivered: {seen}"
    assert seen[0][1] == {"order": 7}, seen
    assert seen[0][0] == seen[1][0], "a redelivery is the same event"
    assert sorted(routed, key=lambda r: r[0]) == [("circle", {"kind": "circle"}), ("other", {"kind": "square"})], routed
    assert len(ticks) >= 2, f"the cron binding fired {len(ticks)} times"
print("grpc subscriber checks passed")
os._exit(0)
