"""Drives an Outrigger gateway with the official Dapr Python SDK.

Run by gateway/tests/python_sdk.rs with DAPR_HTTP_PORT / DAPR_GRPC_PORT
pointing at a gateway whose resources declare `statestore` (ETag +
transactions), the `vault` secret store and the `echo` output binding.
With OUTRIGGER_EXPECT_TOKEN set, the gateway requires that API token: the
script checks that calls without it fail and calls with it pass.
Every check raises on failure; the process exits non-zero.
"""

import json
import os
import urllib.error
import urllib.request

import grpc
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType
from dapr.clients.grpc._state import StateItem

HTTP = f"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}"
TOKEN = os.environ.get("OUTRIGGER_EXPECT_TOKEN")


def http(method, path, body=None, token=TOKEN):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(HTTP + path, data=data, method=method)
    if token:
        req.add_header("dapr-api-token", token)
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def state_round_trip(d):
    d.save_state("statestore", "greeting", "hello")
    got = d.get_state("statestore", "greeting")
    assert got.data == b"hello", got.data
    assert got.etag, "ETag on get"

    d.save_state("statestore", "greeting", "hello again", etag=got.etag)
    try:
        d.save_state("statestore", "greeting", "stale write", etag=got.etag)
        raise AssertionError("a stale ETag must be rejected")
    except DaprGrpcError as err:
        assert err.code() == grpc.StatusCode.ABORTED, err.code()
    assert d.get_state("statestore", "greeting").data == b"hello again"

    d.delete_state("statestore", "greeting")
    assert d.get_state("statestore", "greeting").data == b""

    missing_store = None
    try:
        d.get_state("no-such-store", "k")
    except DaprGrpcError as err:
        missing_store = err
    assert missing_store is not None and missing_store.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert missing_store.error_code() == "ERR_STATE_STORE_NOT_FOUND", missing_store.error_code()


def bulk_and_transactions(d):
    d.save_bulk_state("statestore", [StateItem(key="a", value="1"), StateItem(key="b", value="2")])
    items = {i.key: i.data for i in d.get_bulk_state("statestore", ["a", "b", "zz"]).items}
    assert items == {"a": b"1", "b": b"2", "zz": b""}, items

    d.execute_state_transaction(
        "statestore",
        [
            TransactionalStateOperation(key="t", data="in tx"),
            TransactionalStateOperation(operation_type=TransactionOperationType.delete, key="a"),
        ],
    )
    assert d.get_state("statestore", "t").data == b"in tx"
    assert d.get_state("statestore", "a").data == b""


def cross_api(d):
    # HTTP stores the JSON encoding; gRPC reads those bytes back, and vice versa.
    status, _ = http("POST", "/v1.0/state/statestore", [{"key": "doc", "value": {"n": 1}}])
    assert status == 204, status
    assert json.loads(d.get_state("statestore", "doc").data) == {"n": 1}
    d.save_state("statestore", "raw", b"\x00\x01raw")
    status, body = http("GET", "/v1.0/state/statestore/raw")
    assert (status, body) == (200, b"\x00\x01raw"), (status, body)


def secrets_bindings_metadata(d):
    assert d.get_secret("vault", "db-password").secret == {"password": "s3cret"}
    assert d.get_bulk_secret("vault").secrets["db-password"] == {"password": "s3cret"}
    reply = d.invoke_binding("echo", "create", data="ping")
    assert reply.data == b"ping", reply.data
    assert reply.binding_metadata.get("password-seen") == "s3cret"
    d.set_metadata("owner", "python-sdk")
    meta = d.get_metadata()
    assert meta.application_id == "test-app", meta.application_id
    names = sorted(c.name for c in meta.registered_components)
    assert names == ["configstore", "echo", "pubsub", "statestore", "vault"], names
    assert meta.extended_metadata.get("owner") == "python-sdk"


def publish(d):
    d.publish_event("pubsub", "orders", json.dumps({"id": 1}), data_content_type="application/json")
    d.publish_event("pubsub", "orders", "plain words")


def token_checks():
    status, body = http("GET", "/v1.0/metadata", token=None)
    assert (status, body) == (401, b"invalid api token"), (status, body)
    saved = os.environ.pop("DAPR_API_TOKEN")
    try:
        with DaprClient() as anonymous:
            anonymous.get_state("statestore", "x")
        raise AssertionError("a call without the token must fail")
    except DaprGrpcError as err:
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err.code()
    finally:
        os.environ["DAPR_API_TOKEN"] = saved


def main():
    with DaprClient() as d:
        state_round_trip(d)
        bulk_and_transactions(d)
        cross_api(d)
        secrets_bindings_metadata(d)
        publish(d)
    if TOKEN:
        token_checks()
    print("python sdk checks passed")


if __name__ == "__main__":
    main()
