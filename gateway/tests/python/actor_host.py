"""An actor host under `outrigger run --app-port`: FastAPI + uvicorn with the
official SDK's `dapr.ext.fastapi.DaprActor`. It hosts three actor types and
appends every activation, deactivation, timer, reminder and nested call to
the JSON-lines file named by ACTOR_EVENTS (each line carries ACTOR_BOOT, so
the test can tell a restarted host from the first one).

- DemoActor: methods with arguments and results, state through the SDK's
  state manager, timers, reminders (Remindable).
- ReentrantActor: reentrancy enabled for this type only (ActorTypeConfig);
  CallSelf calls its own actor through an ActorProxy.
- PlainActor: the same code without reentrancy; the nested call must wait
  for the outer turn, so CallSelf gives up after 2 s and says so.

Every type is deactivated after 2 s idle (scan every 1 s)."""

import asyncio
import json
import os
import time
from contextlib import asynccontextmanager
from datetime import timedelta

import uvicorn
from fastapi import FastAPI

from dapr.actor import Actor, ActorId, ActorProxy, Remindable
from dapr.actor.runtime.config import (
    ActorReentrancyConfig,
    ActorRuntimeConfig,
    ActorTypeConfig,
)
from dapr.actor.runtime.runtime import ActorRuntime
from dapr.common.reentrancy_context import reentrancy_ctx
from dapr.ext.fastapi import DaprActor

from actor_interfaces import DemoActorInterface, SelfCallInterface

EVENTS = os.environ["ACTOR_EVENTS"]
BOOT = os.environ.get("ACTOR_BOOT", "1")


def record(event, actor, **fields):
    line = {
        "event": event,
        "type": type(actor).__name__ if actor is not None else None,
        "id": actor.id.id if actor is not None else None,
        "boot": BOOT,
        "pid": os.getpid(),
        "t": time.time(),
        **fields,
    }
    # One short write per line with O_APPEND: lines never interleave.
    with open(EVENTS, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


class DemoActor(Actor, DemoActorInterface, Remindable):
    async def _on_activate(self) -> None:
        record("activate", self)

    async def _on_deactivate(self) -> None:
        record("deactivate", self)

    async def echo(self, arg: object) -> object:
        return {"actor": self.id.id, "got": arg}

    async def add(self, arg: object) -> int:
        return arg["a"] + arg["b"]

    async def fail(self) -> None:
        raise ValueError("failing on purpose")

    async def set_value(self, arg: object) -> None:
        await self._state_manager.set_state("value", arg)
        await self._state_manager.save_state()

    async def get_value(self) -> object:
        found, value = await self._state_manager.try_get_state("value")
        return value if found else None

    async def start_timer(self, arg: object) -> None:
        await self.register_timer(
            arg["name"],
            self.on_tick,
            {"name": arg["name"], "payload": arg.get("payload")},
            timedelta(milliseconds=arg["due_ms"]),
            timedelta(milliseconds=arg["period_ms"]),
        )

    async def stop_timer(self, arg: object) -> None:
        await self.unregister_timer(arg["name"])

    async def on_tick(self, data) -> None:
        record("timer", self, name=data["name"], payload=data.get("payload"))

    async def start_reminder(self, arg: object) -> None:
        period = arg.get("period_ms")
        asked = time.time()
        await self.register_reminder(
            arg["name"],
            json.dumps(arg.get("payload")).encode(),
            timedelta(milliseconds=arg["due_ms"]),
            timedelta(milliseconds=period) if period else None,
        )
        record("reminder-registered", self, name=arg["name"], due_ms=arg["due_ms"], asked=asked)

    async def stop_reminder(self, arg: object) -> None:
        await self.unregister_reminder(arg["name"])

    async def receive_reminder(self, name, state, due_time, period, ttl=None) -> None:
        record("reminder", self, name=name, payload=json.loads(state) if state else None)


class SelfCaller(Actor, SelfCallInterface):
    """CallSelf calls Inner on this same actor through the gateway, as a
    nested call of the current turn (the SDK forwards Dapr-Reentrancy-Id
    when the gateway sent one)."""

    async def _on_activate(self) -> None:
        record("activate", self)

    async def _on_deactivate(self) -> None:
        record("deactivate", self)

    async def call_self(self, arg: object) -> object:
        reentrancy_id = reentrancy_ctx.get(None)
        proxy = ActorProxy.create(type(self).__name__, ActorId(self.id.id), SelfCallInterface)
        started = time.monotonic()
        try:
            nested = await asyncio.wait_for(proxy.Inner(arg), 2)
        except asyncio.TimeoutError:
            nested = "timed out"
        except Exception as err:  # noqa: BLE001 - reported to the client
            nested = f"failed: {err!r}"
        return {
            "nested": nested,
            "reentrancyId": reentrancy_id,
            "waited": time.monotonic() - started,
        }

    async def inner(self, arg: object) -> object:
        record("inner", self, arg=arg, reentrancyId=reentrancy_ctx.get(None))
        return f"inner:{arg}"


class ReentrantActor(SelfCaller):
    pass


class PlainActor(SelfCaller):
    pass


@asynccontextmanager
async def lifespan(app):
    ActorRuntime.set_actor_config(
        ActorRuntimeConfig(
            actor_idle_timeout=timedelta(seconds=2),
            actor_scan_interval=timedelta(seconds=1),
            actor_type_configs=[
                ActorTypeConfig(
                    "ReentrantActor", reentrancy=ActorReentrancyConfig(enabled=True)
                )
            ],
        )
    )
    for actor_type in (DemoActor, ReentrantActor, PlainActor):
        await dapr_actor.register_actor(actor_type)
    record("boot", None, daprHttpPort=os.environ["DAPR_HTTP_PORT"])
    yield


app = FastAPI(lifespan=lifespan)
dapr_actor = DaprActor(app)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["APP_PORT"]), log_level="warning")
