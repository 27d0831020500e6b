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
from dapr.ext.grpc import App

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


@app.binding("clock")
def clock(request):
    # The cron input binding arrives through OnBindingEvent.
    with lock:
        ticks.append(time.time())


threading.Thread(target=app.run, args=(int(os.environ["APP_PORT"]),), daemon=True).start()

with DaprClient() as d:
    time.sleep(1.5)
    d.publish_event("pubsub", "orders", json.dumps({"order": 7}), data_content_type="application/json")

deadline = time.time() + 30
while time.time() < deadline:
    with lock:
        if len(seen) >= 2 and len(ticks) >= 2:
            break
    time.sleep(0.1)

with lock:
    assert len(seen) >= 2, f"RETRY must be redelivered: {seen}"
    assert seen[0][1] == {"order": 7}, seen
    assert seen[0][0] == seen[1][0], "a redelivery is the same event"
    assert len(ticks) >= 2, f"the cron binding fired {len(ticks)} times"
print("grpc subscriber checks passed")
os._exit(0)
