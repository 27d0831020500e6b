"""A streaming subscription with the official SDK (`DaprClient.subscribe`,
gRPC `SubscribeTopicEventsAlpha1`), under `outrigger run`: events arrive on
the app's own stream, a retry is redelivered, success is final."""

import json
import time

from dapr.clients import DaprClient


def next_message(sub, deadline):
    while time.time() < deadline:
        msg = sub.next_message()
        if msg is not None:
            return msg
    raise AssertionError("no message within the deadline")


with DaprClient() as d:
    sub = d.subscribe(pubsub_name="pubsub", topic="streamed")
    d.publish_event("pubsub", "streamed", json.dumps({"n": 1}), data_content_type="application/json")
    deadline = time.time() + 30
    first = next_message(sub, deadline)
    assert first.data() == {"n": 1}, first.data()
    assert first.topic() == "streamed" and first.pubsub_name() == "pubsub"
    sub.respond_retry(first)
    again = next_message(sub, deadline)
    assert again.id() == first.id(), "the retried event comes again"
    sub.respond_success(again)
    sub.close()
print("streaming subscription checks passed")
