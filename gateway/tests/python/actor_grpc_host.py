"""An actor host that is a gRPC app: the official SDK's
`dapr.actor.runtime.grpc_host.ActorGrpcHost`, under
`outrigger run --app-protocol grpc --app-port`. It serves no HTTP at all:
it opens the empty gRPC app-channel listener on APP_PORT, registers its
actor types on `SubscribeActorEventsAlpha1`, receives invoke, timer,
reminder and deactivate requests on that stream, and its actors reach
state, timers and reminders through the SDK's DaprActorGrpcClient (the
gateway's gRPC actor rpcs).

It hosts actor_host.py's DemoActor, unchanged (same events, same
ACTOR_EVENTS file), deactivated after 2 s idle. SIGTERM closes the host
(the stream ends cleanly) and exits 0."""

import asyncio
import os
import signal
from datetime import timedelta

from dapr.actor.runtime.config import ActorRuntimeConfig
from dapr.actor.runtime.grpc_host import ActorGrpcHost
from dapr.actor.runtime.runtime import ActorRuntime

# Only the actor class and its event log: the FastAPI app defined there is
# never served.
from actor_host import DemoActor, record


async def main():
    ActorRuntime.set_actor_config(
        ActorRuntimeConfig(
            actor_idle_timeout=timedelta(seconds=2),
            actor_scan_interval=timedelta(seconds=1),
        )
    )
    host = ActorGrpcHost()
    await host.register_actor(DemoActor)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    # Returns once the gateway answered the registration (initial_response).
    await host.start()
    record(
        "boot",
        None,
        transport="grpc-stream",
        daprHttpPort=os.environ["DAPR_HTTP_PORT"],
        daprGrpcPort=os.environ["DAPR_GRPC_PORT"],
        appPort=os.environ["APP_PORT"],
    )
    await stop.wait()
    await host.close()
    record("stopped", None)


if __name__ == "__main__":
    asyncio.run(main())
