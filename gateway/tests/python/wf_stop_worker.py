"""An app that stops its workflow worker (`WorkflowRuntime.shutdown`) while
its workflows still have activities in flight, waits a second, and exits 0
(WF_MODE=stop): `outrigger run` should then stop too, promptly. Prints
"worker stopped mid-run; exiting" just before it exits.

WF_MODE=resume, under the next `outrigger run` on the same data folder:
the unfinished instances complete with their outputs. Prints "resumed
workflows completed".
"""

import os
import time

import dapr.ext.workflow as wf

COUNT = 10
wfr = wf.WorkflowRuntime()
started = []


@wfr.activity(name="slow_step")
def slow_step(ctx, n):
    started.append(n)
    time.sleep(0.2)
    return n + 1


@wfr.workflow(name="slow_chain")
def slow_chain(ctx, n):
    for _ in range(5):
        n = yield ctx.call_activity(slow_step, input=n)
    return n


wfr.start()
client = wf.DaprWorkflowClient()
if os.environ["WF_MODE"] == "stop":
    for i in range(COUNT):
        client.schedule_new_workflow(slow_chain, input=i * 100, instance_id=f"slow-{i}")
    deadline = time.monotonic() + 20
    while len(started) < 5:
        assert time.monotonic() < deadline, "no activity started within 20 s"
        time.sleep(0.05)
    state = client.get_workflow_state("slow-0")
    assert state.runtime_status == wf.WorkflowStatus.RUNNING, state.runtime_status
    client.close()
    wfr.shutdown()
    time.sleep(1)
    print("worker stopped mid-run; exiting", flush=True)
else:
    for i in range(COUNT):
        state = client.wait_for_workflow_completion(f"slow-{i}", timeout_in_seconds=30)
        assert state.runtime_status == wf.WorkflowStatus.COMPLETED, (i, state.runtime_status)
        assert state.serialized_output == str(i * 100 + 5), (i, state.serialized_output)
    client.close()
    wfr.shutdown()
    print("resumed workflows completed", flush=True)
