"""Actor interfaces shared by actor_host.py (which implements them) and
actor_client.py (which calls them through dapr.actor.ActorProxy)."""

from dapr.actor import ActorInterface, actormethod


class DemoActorInterface(ActorInterface):
    @actormethod(name="Echo")
    async def echo(self, arg: object) -> object: ...

    @actormethod(name="Add")
    async def add(self, arg: object) -> int: ...

    @actormethod(name="Fail")
    async def fail(self) -> None: ...

    @actormethod(name="SetValue")
    async def set_value(self, arg: object) -> None: ...

    @actormethod(name="GetValue")
    async def get_value(self) -> object: ...

    @actormethod(name="StartTimer")
    async def start_timer(self, arg: object) -> None: ...

    @actormethod(name="StopTimer")
    async def stop_timer(self, arg: object) -> None: ...

    @actormethod(name="StartReminder")
    async def start_reminder(self, arg: object) -> None: ...

    @actormethod(name="StopReminder")
    async def stop_reminder(self, arg: object) -> None: ...


class SelfCallInterface(ActorInterface):
    @actormethod(name="CallSelf")
    async def call_self(self, arg: object) -> object: ...

    @actormethod(name="Inner")
    async def inner(self, arg: object) -> object: ...
