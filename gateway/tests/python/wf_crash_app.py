"""Worker and client for the workflow crash test, under `outrigger run`.

Boot 1 (WF_SCHEDULE=1) schedules WF_COUNT instances of `crash_flow` (ids
crash-000, crash-001, ...), a chain of 5 activities each, before it starts
its worker. Every boot then works on them and writes its progress to WF_PROGRESS (JSON:
{"boot", "completed", "statuses"}) several times a second; the test kills
the whole `outrigger run` (gateway, component, this app) with SIGKILL
while that count grows, and starts it again on the same data folder. When
every instance is terminal, the boot checks each output, writes them all to
WF_RESULTS ({id: {"status", "output"}}) and prints
"crash checks passed" (or raises).

Activities append one line per execution to WF_ACTIVITIES ({boot, i, k}),
so the test can tell what ran again after a kill.
"""

import json
import os
import threading
import time

import dapr.ext.workflow as wf

BOOT = int(os.environ["WF_BOOT"])
COUNT = int(os.environ.get("WF_COUNT", "200"))
STEPS = 5
PROGRESS = os.environ["WF_PROGRESS"]
RESULTS = os.environ["WF_RESULTS"]
ACTIVITIES = os.environ["WF_ACTIVITIES"]
# Slows the activities so that a run lasts long enough to be killed twice.
STEP_DELAY = float(os.environ.get("WF_STEP_DELAY", "0.03"))

wfr = wf.WorkflowRuntime()
_lock = threading.Lock()


TERMINAL = (wf.WorkflowStatus.COMPLETED, wf.WorkflowStatus.FAILED, wf.WorkflowStatus.TERMINATED)


def instance_id(i):
    return f"crash-{i:03}"


@wfr.activity(name="crash_step")
def crash_step(ctx, inp):
    time.sleep(STEP_DELAY)
    with _lock, open(ACTIVITIES, "a", encoding="utf-8") as f:
        f.write(json.dumps({"boot": BOOT, "i": inp["i"], "k": inp["k"]}) + "\n")
    return {"value": inp["value"] * 3 + inp["k"], "trail": inp["trail"] + [f"{inp['i']}.{inp['k']}"]}


@wfr.workflow(name="crash_flow")
def crash_flow(ctx, i):
    acc = {"value": i, "trail": []}
    for k in range(STEPS):
        acc = yield ctx.call_activity(crash_step, input={"i": i, "k": k, **acc})
    return {"i": i, "value": acc["value"], "trail": acc["trail"]}


def expected(i):
    value = i
    for k in range(STEPS):
        value = value * 3 + k
    return {"i": i, "value": value, "trail": [f"{i}.{k}" for k in range(STEPS)]}


def write_atomically(path, value):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f)
    os.replace(tmp, path)


def main():
    client = wf.DaprWorkflowClient()
    if os.environ.get("WF_SCHEDULE") == "1":
        # Before the worker starts, so that scheduling does not compete with running.
        for i in range(COUNT):
            client.schedule_new_workflow(crash_flow, input=i, instance_id=instance_id(i))
        print(f"boot {BOOT}: scheduled {COUNT}", flush=True)
    write_atomically(PROGRESS, {"boot": BOOT, "completed": None, "statuses": {}})
    wfr.start()
    deadline = time.monotonic() + 120
    states = {}
    while True:
        # Only what was not terminal at the last look.
        for i in range(COUNT):
            key = instance_id(i)
            if key not in states or states[key].runtime_status not in TERMINAL:
                states[key] = client.get_workflow_state(key)
                assert states[key] is not None, f"{key} is missing"
        statuses = {}
        for s in states.values():
            statuses[s.runtime_status.name] = statuses.get(s.runtime_status.name, 0) + 1
        done = sum(1 for s in states.values() if s.runtime_status in TERMINAL)
        write_atomically(PROGRESS, {"boot": BOOT, "completed": done, "statuses": statuses})
        if done == COUNT:
            break
        assert time.monotonic() < deadline, f"boot {BOOT}: not done in 120 s: {statuses}"
        time.sleep(0.1)
    results = {
        k: {"status": s.runtime_status.name, "output": json.loads(s.serialized_output) if s.serialized_output else None}
        for k, s in states.items()
    }
    write_atomically(RESULTS, results)
    wrong = {k: r for i, (k, r) in enumerate(sorted(results.items()))
             if r != {"status": "COMPLETED", "output": expected(i)}}
    assert not wrong, f"{len(wrong)} wrong: {list(wrong.items())[:5]}"
    client.close()
    wfr.shutdown()
    print(f"boot {BOOT}: crash checks passed", flush=True)


if __name__ == "__main__":
    main()
