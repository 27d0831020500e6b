"""An app started by `outrigger run`: it finds the gateway through the
DAPR_* variables the launcher sets, and uses the embedded default
(`statestore` and `pubsub` on SQLite) with the official Python SDK."""

import json
import os
import time

import grpc
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._request import TransactionalStateOperation

assert os.environ["APP_ID"] == "e2e-app", os.environ["APP_ID"]

with DaprClient() as d:
    d.save_state("statestore", "order-1", json.dumps({"city": "Oslo", "total": 3}))
    d.save_state("statestore", "order-2", json.dumps({"city": "Lima", "total": 5}))
    got = d.get_state("statestore", "order-1")
    assert json.loads(got.data) == {"city": "Oslo", "total": 3}

    try:
        d.save_state("statestore", "order-1", "x", etag="12345")
        raise AssertionError("stale ETag accepted")
    except DaprGrpcError as err:
        assert err.code() == grpc.StatusCode.ABORTED, err.code()

    d.execute_state_transaction(
        "statestore",
        [TransactionalStateOperation(key="tx-a", data="1"), TransactionalStateOperation(key="tx-b", data="2")],
    )
    assert d.get_state("statestore", "tx-b").data == b"2"

    d.save_state("statestore", "short", "bye", state_metadata={"ttlInSeconds": "1"})
    assert d.get_state("statestore", "short").data == b"bye"
    time.sleep(1.5)
    assert d.get_state("statestore", "short").data == b"", "TTL expired"

    query = json.dumps({"filter": {"EQ": {"city": "Lima"}}})
    results = d.query_state("statestore", query).results
    assert [r.key for r in results] == ["order-2"], [r.key for r in results]

    d.publish_event("pubsub", "orders", json.dumps({"id": 1}), data_content_type="application/json")

    meta = d.get_metadata()
    types = sorted((c.name, c.type) for c in meta.registered_components)
    state_type = os.environ.get("EXPECT_STATE_TYPE", "state.sqlite")
    assert types == [("pubsub", "pubsub.sqlite"), ("statestore", state_type)], types

token = os.environ.get("DAPR_API_TOKEN")
if token:
    import urllib.error
    import urllib.request

    url = f"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}/v1.0/state/statestore/order-1"
    try:
        urllib.request.urlopen(url)
        raise AssertionError("a call without the token was served")
    except urllib.error.HTTPError as err:
        assert err.code == 401, err.code
    request = urllib.request.Request(url, headers={"dapr-api-token": token})
    with urllib.request.urlopen(request) as resp:
        assert json.loads(resp.read()) == {"city": "Oslo", "total": 3}

print("outrigger run app checks passed")
