"""A client app under its own `outrigger run` (no app port) that calls the
actors of actor_host.py with the official SDK's dapr.actor.ActorProxy; its
gateway finds the host's gateway through the shared actor state store.

CLIENT_MODE=main: methods, state (SDK and HTTP), a timer, idle deactivation
and reentrancy on and off. CLIENT_MODE=reminders: reminders fire, and a
durable one (`later`, due in LATER_DUE_MS) is registered for the test to
see fire after the host restarts. CLIENT_MODE=grpc-host (the host is
actor_grpc_host.py, a gRPC app hosting DemoActor over the actor event
stream): methods, state, a timer, idle deactivation, and reminders whose
data arrives intact. Host events are read from ACTOR_EVENTS.
Prints "<mode> actor client checks passed" on success."""

import asyncio
import json
import os
import time
import urllib.error
import urllib.request

from dapr.actor import ActorId, ActorProxy
from dapr.clients.exceptions import DaprInternalError

from actor_interfaces import DemoActorInterface, SelfCallInterface

EVENTS = os.environ["ACTOR_EVENTS"]
GATEWAY = f"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}"


def events(event=None, actor_id=None, **match):
    try:
        with open(EVENTS, encoding="utf-8") as f:
            lines = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []
    return [
        e
        for e in lines
        if (event is None or e["event"] == event)
        and (actor_id is None or e["id"] == actor_id)
        and all(e.get(k) == v for k, v in match.items())
    ]


async def wait_events(event, actor_id, count=1, within=15.0, **match):
    """The first `count` matching events, waiting up to `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        found = events(event, actor_id, **match)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{count} {event} event(s) of {actor_id} {match} not seen in {within} s; got {found}; "
                f"all events: {events()}"
            )
        await asyncio.sleep(0.05)


def host_gateway():
    """The actor host's gateway (its latest boot event says where)."""
    return f"http://127.0.0.1:{events('boot')[-1]['daprHttpPort']}"


def http_get(path, gateway=GATEWAY):
    """(status, body) of a GET on a gateway (this app's by default)."""
    try:
        with urllib.request.urlopen(gateway + path, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def demo(actor_id):
    return ActorProxy.create("DemoActor", ActorId(actor_id), DemoActorInterface)


async def first_call(call, within=30.0):
    """The first call retried until the host's gateway has registered its
    actor types in the shared store."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await call()
        except Exception as err:  # noqa: BLE001 - retried until the deadline
            if time.monotonic() > deadline:
                raise AssertionError(f"the actor host never answered: {err!r}") from err
            await asyncio.sleep(0.1)


async def check_methods_and_state():
    calc = demo("calc-1")
    got = await first_call(lambda: calc.Echo({"hello": "world", "n": [1, 2]}))
    assert got == {"actor": "calc-1", "got": {"hello": "world", "n": [1, 2]}}, got
    assert await calc.Add({"a": 2, "b": 40}) == 42
    try:
        await calc.Fail()
        raise AssertionError("an actor method that raised did not fail the call")
    except DaprInternalError as err:
        assert "failing on purpose" in str(err) or "failing on purpose" in repr(err.__dict__), err

    store = demo("state-1")
    assert await store.GetValue() is None
    value = {"n": 42, "word": "forty-two"}
    await store.SetValue(value)
    assert await store.GetValue() == value
    # Actor state is the hosting app's (keys `{appId}||{type}||{id}||{key}`,
    # as daprd), so it is read on the host's gateway.
    status, body = http_get("/v1.0/actors/DemoActor/state-1/state/value", host_gateway())
    assert status == 200 and json.loads(body) == value, (status, body)
    status, body = http_get("/v1.0/actors/DemoActor/state-1/state/nothing", host_gateway())
    assert status == 204 and body == b"", (status, body)
    status, body = http_get("/v1.0-alpha1/actors/DemoActor")
    active = {a["actorId"] for a in json.loads(body)["actors"]}
    assert status == 200 and {"calc-1", "state-1"} <= active, (status, body)


async def check_timer():
    ticker = demo("timer-1")
    await ticker.StartTimer({"name": "tick", "due_ms": 100, "period_ms": 300, "payload": {"p": 1}})
    ticks = await wait_events("timer", "timer-1", count=3, within=10)
    assert all(t["name"] == "tick" and t["payload"] == {"p": 1} for t in ticks), ticks
    # Two periods (600 ms) apart, give or take a late first tick.
    span = ticks[2]["t"] - ticks[0]["t"]
    assert span >= 0.3, f"3 ticks of a 300 ms timer within {span:.3f} s"
    await ticker.StopTimer({"name": "tick"})
    stopped = len(events("timer", "timer-1"))
    await asyncio.sleep(1.0)  # three periods
    after = len(events("timer", "timer-1"))
    assert after <= stopped + 1, f"the timer kept firing after it was unregistered: {stopped} -> {after}"


async def check_idle_deactivation():
    idle = demo("idle-1")
    await idle.SetValue({"n": 7})
    last_call = time.time()
    [activated] = events("activate", "idle-1")
    [gone] = await wait_events("deactivate", "idle-1", within=15)
    idle_for = gone["t"] - last_call
    assert 1.5 <= idle_for <= 8, f"deactivated {idle_for:.2f} s after its last call (idle timeout 2 s)"
    # Its state was saved, so a new activation reads it back.
    assert await idle.GetValue() == {"n": 7}
    assert len(events("activate", "idle-1")) == 2, events(None, "idle-1")
    assert activated["t"] < gone["t"]


async def check_reentrancy():
    reentrant = ActorProxy.create("ReentrantActor", ActorId("re-1"), SelfCallInterface)
    got = await reentrant.CallSelf("x")
    assert got["nested"] == "inner:x", got
    assert got["reentrancyId"], f"no Dapr-Reentrancy-Id reached a reentrant type: {got}"
    [inner] = events("inner", "re-1")
    assert inner["reentrancyId"] == got["reentrancyId"], (inner, got)

    plain = ActorProxy.create("PlainActor", ActorId("plain-1"), SelfCallInterface)
    started = time.monotonic()
    got = await plain.CallSelf("y")
    assert got["nested"] == "timed out", f"a non-reentrant actor re-entered its own turn: {got}"
    assert time.monotonic() - started >= 2, got
    print(f"non-reentrant self-call: {got}", flush=True)


async def main_checks():
    await check_methods_and_state()
    await asyncio.gather(check_timer(), check_idle_deactivation(), check_reentrancy())


async def reminder_checks():
    rem = demo("rem-1")
    await first_call(
        lambda: rem.StartReminder({"name": "soon", "due_ms": 100, "payload": {"k": "once"}})
    )
    [soon] = await wait_events("reminder", "rem-1", name="soon")
    assert soon["payload"] == {"k": "once"} and soon["boot"] == "1", soon

    await rem.StartReminder({"name": "every", "due_ms": 100, "period_ms": 300, "payload": 5})
    every = await wait_events("reminder", "rem-1", count=2, name="every")
    assert all(e["payload"] == 5 for e in every), every
    await rem.StopReminder({"name": "every"})

    await rem.StartReminder(
        {"name": "later", "due_ms": int(os.environ["LATER_DUE_MS"]), "payload": {"k": "durable"}}
    )
    status, body = http_get("/v1.0-alpha1/actors/DemoActor/reminders")
    names = {(r["actorID"], r["name"]) for r in json.loads(body)["reminders"]}
    assert status == 200 and ("rem-1", "later") in names, (status, body)
    assert ("rem-1", "every") not in names, f"an unregistered reminder is still listed: {body}"
    # A one-shot reminder is deleted once the app took it.
    deadline = time.monotonic() + 10
    while ("rem-1", "soon") in names:
        assert time.monotonic() < deadline, f"fired one-shot reminder still stored: {body}"
        await asyncio.sleep(0.1)
        _, body = http_get("/v1.0-alpha1/actors/DemoActor/reminders")
        names = {(r["actorID"], r["name"]) for r in json.loads(body)["reminders"]}
    assert not events("reminder", "rem-1", name="later"), "the durable reminder fired early"


async def check_reminder_data():
    """Reminders registered by the actor (through the gateway's gRPC
    RegisterActorReminder when the host is a gRPC app) fire with the data
    they were registered with."""
    rem = demo("rem-1")
    payload = {"k": "once", "n": [1, 2.5, None, True], "text": "h\u00e9llo \u2603", "empty": {}}
    await rem.StartReminder({"name": "soon", "due_ms": 100, "payload": payload})
    [soon] = await wait_events("reminder", "rem-1", name="soon")
    assert soon["payload"] == payload, soon

    await rem.StartReminder({"name": "every", "due_ms": 100, "period_ms": 300, "payload": "text"})
    every = await wait_events("reminder", "rem-1", count=2, name="every")
    assert all(e["payload"] == "text" for e in every), every
    await rem.StopReminder({"name": "every"})
    stopped = len(events("reminder", "rem-1", name="every"))
    await asyncio.sleep(1.0)  # three periods
    after = len(events("reminder", "rem-1", name="every"))
    assert after <= stopped + 1, f"the reminder kept firing after it was unregistered: {stopped} -> {after}"
    # The one-shot reminder was taken once (the app's answer was accepted).
    assert len(events("reminder", "rem-1", name="soon")) == 1, events("reminder", "rem-1")


async def grpc_host_checks():
    await check_methods_and_state()
    await asyncio.gather(check_timer(), check_idle_deactivation(), check_reminder_data())


MODE = os.environ.get("CLIENT_MODE", "main")
asyncio.run(
    {"main": main_checks, "reminders": reminder_checks, "grpc-host": grpc_host_checks}[MODE]()
)
print(f"{MODE} actor client checks passed", flush=True)
