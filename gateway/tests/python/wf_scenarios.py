"""Workflow scenarios with the official SDK (`dapr.ext.workflow`), run under
`outrigger run`: this process is both the worker (`WorkflowRuntime`) and the
client (`DaprWorkflowClient`), both on the gateway's gRPC port
(TaskHubSidecarService).

WF_GROUP picks the scenarios (see GROUPS at the bottom). Each scenario
asserts outputs and statuses, and what its activities saw (activities run
in this process, so they log to ACTIVITY_LOG). It prints
`scenario <name> ok <seconds>` when it passes, and the script ends with
`workflow checks passed: <group>`; any failed check raises, and the script
exits non-zero.
"""

import json
import os
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import grpc

import dapr.ext.workflow as wf

wfr = wf.WorkflowRuntime()

# What the activities did, in order: (activity, tag, detail).
ACTIVITY_LOG = []
_LOG_LOCK = threading.Lock()
# Attempts per key, for flaky and monitored activities.
ATTEMPTS = {}


def log_activity(name, tag, detail=None):
    with _LOG_LOCK:
        ACTIVITY_LOG.append((name, tag, detail))


def activities_of(tag):
    with _LOG_LOCK:
        return [(name, detail) for (name, t, detail) in ACTIVITY_LOG if t == tag]


def attempt(key):
    with _LOG_LOCK:
        ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
        return ATTEMPTS[key]


# === activities ===


@wfr.activity(name="append")
def append(ctx, inp):
    log_activity("append", inp["tag"], inp["add"])
    return f"{inp['text']}-{inp['add']}"


@wfr.activity(name="square")
def square(ctx, inp):
    log_activity("square", inp["tag"], inp["n"])
    return inp["n"] * inp["n"]


@wfr.activity(name="flaky")
def flaky(ctx, inp):
    n = attempt(inp["tag"])
    log_activity("flaky", inp["tag"], n)
    if n <= inp["fail_times"]:
        raise RuntimeError(f"flaky attempt {n} failed")
    return f"ok after {n} attempts"


@wfr.activity(name="always_fails")
def always_fails(ctx, inp):
    n = attempt(inp["tag"])
    log_activity("always_fails", inp["tag"], n)
    raise ValueError(f"always fails (attempt {n})")


@wfr.activity(name="tick")
def tick(ctx, inp):
    log_activity("tick", inp["tag"], inp["n"])
    return inp["n"] + 1


@wfr.activity(name="check_job")
def check_job(ctx, inp):
    n = attempt(inp["tag"])
    log_activity("check_job", inp["tag"], n)
    return "done" if n >= inp["ready_after"] else "pending"


# The order-processing saga's "services": stock per item, and charges per order.
STOCK = {"widget": 10}
CHARGES = {}


@wfr.activity(name="reserve_inventory")
def reserve_inventory(ctx, order):
    log_activity("reserve_inventory", order["id"], order["qty"])
    with _LOG_LOCK:
        if STOCK.get(order["item"], 0) < order["qty"]:
            raise RuntimeError(f"not enough {order['item']}")
        STOCK[order["item"]] -= order["qty"]
    return {"reservation": f"res-{order['id']}"}


@wfr.activity(name="release_inventory")
def release_inventory(ctx, order):
    log_activity("release_inventory", order["id"], order["qty"])
    with _LOG_LOCK:
        STOCK[order["item"]] += order["qty"]
    return "released"


@wfr.activity(name="process_payment")
def process_payment(ctx, order):
    log_activity("process_payment", order["id"], order["amount"])
    with _LOG_LOCK:
        # The charge is taken before the card check fails: the saga refunds it.
        CHARGES[order["id"]] = order["amount"]
    if order["card"] == "declined":
        raise ValueError(f"card declined for order {order['id']}")
    return {"payment": f"pay-{order['id']}"}


@wfr.activity(name="refund_payment")
def refund_payment(ctx, order):
    log_activity("refund_payment", order["id"], order["amount"])
    with _LOG_LOCK:
        CHARGES.pop(order["id"], None)
    return "refunded"


@wfr.activity(name="ship_order")
def ship_order(ctx, order):
    log_activity("ship_order", order["id"], order["item"])
    return {"tracking": f"track-{order['id']}"}


# === workflows ===


@wfr.workflow(name="chain")
def chain(ctx, inp):
    text = inp["text"]
    for add in ("a", "b", "c"):
        text = yield ctx.call_activity(append, input={"tag": inp["tag"], "text": text, "add": add})
    return text


@wfr.workflow(name="fan_out")
def fan_out(ctx, inp):
    tasks = [ctx.call_activity(square, input={"tag": inp["tag"], "n": n}) for n in range(inp["count"])]
    results = yield wf.when_all(tasks)
    return {"squares": results, "sum": sum(results)}


@wfr.workflow(name="sleeper")
def sleeper(ctx, seconds):
    before = ctx.current_utc_datetime
    yield ctx.create_timer(timedelta(seconds=seconds))
    after = ctx.current_utc_datetime
    return {"waited": (after - before).total_seconds()}


@wfr.workflow(name="approval")
def approval(ctx, timeout_s):
    event = ctx.wait_for_external_event("approve")
    timeout = ctx.create_timer(timedelta(seconds=timeout_s))
    winner = yield wf.when_any([event, timeout])
    if winner == event:
        return {"approved": event.get_result()}
    return {"timedOut": True}


@wfr.workflow(name="failing_child")
def failing_child(ctx, inp):
    yield ctx.create_timer(timedelta(milliseconds=10))
    raise ValueError(f"child {inp} broke")


@wfr.workflow(name="parent")
def parent(ctx, inp):
    ok = yield ctx.call_child_workflow(
        chain, input={"tag": inp["tag"], "text": "kid"}, instance_id=f"{ctx.instance_id}-ok"
    )
    try:
        yield ctx.call_child_workflow(failing_child, input="f1", instance_id=f"{ctx.instance_id}-bad")
        failed = None
    except wf.TaskFailedError as err:
        failed = {"message": err.details.message, "type": err.details.error_type}
    return {"child": ok, "failed": failed}


FAST_RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(milliseconds=100),
    max_number_of_attempts=3,
    backoff_coefficient=1.0,
)


@wfr.workflow(name="retrying")
def retrying(ctx, inp):
    result = yield ctx.call_activity(flaky, input=inp, retry_policy=FAST_RETRY)
    return {"result": result}


@wfr.workflow(name="doomed")
def doomed(ctx, inp):
    yield ctx.call_activity(always_fails, input=inp, retry_policy=FAST_RETRY)
    return "unreachable"


@wfr.workflow(name="counter")
def counter(ctx, state):
    if state["n"] < state["target"]:
        n = yield ctx.call_activity(tick, input={"tag": ctx.instance_id, "n": state["n"]})
        ctx.continue_as_new({"n": n, "target": state["target"]})
        return None
    return {"n": state["n"], "instance": ctx.instance_id}


@wfr.workflow(name="summer")
def summer(ctx, state):
    n = yield ctx.wait_for_external_event("n")
    state = {"sum": state["sum"] + n, "left": state["left"] - 1, "seen": state["seen"] + [n]}
    if state["left"] == 0:
        return state
    # Events that arrived meanwhile go to the next iteration.
    ctx.continue_as_new(state, save_events=True)
    return None


@wfr.workflow(name="collector")
def collector(ctx, count):
    got = []
    for _ in range(count):
        got.append((yield ctx.wait_for_external_event("item")))
    return got


@wfr.workflow(name="monitor")
def monitor(ctx, state):
    status = yield ctx.call_activity(check_job, input=state)
    checks = state["checks"] + 1
    if status == "done":
        return {"job": state["tag"], "checks": checks}
    yield ctx.create_timer(timedelta(milliseconds=200))
    ctx.continue_as_new({**state, "checks": checks})
    return None


@wfr.workflow(name="forever")
def forever(ctx, inp):
    if inp.get("with_child"):
        ctx.call_child_workflow(forever, input={}, instance_id=f"{ctx.instance_id}-child")
    yield ctx.wait_for_external_event("never")
    return "unreachable"


@wfr.workflow(name="pausable")
def pausable(ctx, tag):
    yield ctx.create_timer(timedelta(seconds=1))
    go = yield ctx.wait_for_external_event("go")
    text = yield ctx.call_activity(append, input={"tag": tag, "text": go, "add": "done"})
    return text


@wfr.workflow(name="order")
def order(ctx, order):
    # Each step registers its compensation before it runs: a payment that
    # fails may have charged the card already.
    compensations = []
    steps = []
    try:
        reserved = yield ctx.call_activity(reserve_inventory, input=order)
        steps.append(reserved["reservation"])
        compensations.append(release_inventory)
        compensations.append(refund_payment)
        paid = yield ctx.call_activity(process_payment, input=order)
        steps.append(paid["payment"])
        shipped = yield ctx.call_activity(ship_order, input=order)
        steps.append(shipped["tracking"])
        return {"status": "shipped", "steps": steps}
    except wf.TaskFailedError as err:
        undone = []
        for compensate in reversed(compensations):
            undone.append((yield ctx.call_activity(compensate, input=order)))
        return {"status": "compensated", "steps": steps, "undone": undone, "error": err.details.message}


# === checks ===

client = None


def run(workflow, inp, instance_id, timeout=30):
    """Schedule and wait for a terminal status; returns the state."""
    client.schedule_new_workflow(workflow, input=inp, instance_id=instance_id)
    state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=timeout)
    assert state is not None, f"{instance_id} vanished"
    return state


def output(state):
    return json.loads(state.serialized_output) if state.serialized_output else None


def expect_completed(state, want):
    assert state.runtime_status == wf.WorkflowStatus.COMPLETED, (
        state.instance_id,
        state.runtime_status,
        state.failure_details and state.failure_details.message,
    )
    got = output(state)
    assert got == want, (state.instance_id, got, want)


def wait_until(what, check, within=15.0):
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        time.sleep(0.05)


def status_of(instance_id):
    state = client.get_workflow_state(instance_id)
    return state.runtime_status if state else None


def check_chain():
    state = run(chain, {"tag": "chain-1", "text": "x"}, "chain-1")
    expect_completed(state, "x-a-b-c")
    assert activities_of("chain-1") == [("append", "a"), ("append", "b"), ("append", "c")], activities_of("chain-1")
    assert json.loads(state.serialized_input) == {"tag": "chain-1", "text": "x"}, state.serialized_input
    assert state.name == "chain", state.name


def check_fan_out():
    state = run(fan_out, {"tag": "fan-1", "count": 100}, "fan-1", timeout=60)
    squares = [n * n for n in range(100)]
    expect_completed(state, {"squares": squares, "sum": sum(squares)})
    seen = sorted(detail for (_, detail) in activities_of("fan-1"))
    assert seen == list(range(100)), seen


def check_timer():
    started = time.monotonic()
    state = run(sleeper, 2, "sleeper-1")
    elapsed = time.monotonic() - started
    got = output(state)
    assert state.runtime_status == wf.WorkflowStatus.COMPLETED, state.runtime_status
    # Both clocks: the workflow's replay-safe time and ours.
    assert 2.0 <= got["waited"] < 10.0, got
    assert 2.0 <= elapsed < 10.0, elapsed


def check_scheduled_start():
    # start_at holds the first step: PENDING until then, done soon after.
    started = time.monotonic()
    at = datetime.now(timezone.utc) + timedelta(seconds=2)
    client.schedule_new_workflow(sleeper, input=0, instance_id="scheduled-1", start_at=at)
    early = client.get_workflow_state("scheduled-1")
    assert early.runtime_status == wf.WorkflowStatus.PENDING, early.runtime_status
    state = client.wait_for_workflow_completion("scheduled-1", timeout_in_seconds=20)
    assert state.runtime_status == wf.WorkflowStatus.COMPLETED, state.runtime_status
    elapsed = time.monotonic() - started
    assert 1.9 <= elapsed < 10.0, elapsed


def check_event_arrives():
    started = time.monotonic()
    client.schedule_new_workflow(approval, input=30, instance_id="approval-yes")
    client.wait_for_workflow_start("approval-yes", timeout_in_seconds=10)
    client.raise_workflow_event("approval-yes", "approve", data={"by": "alice"})
    state = client.wait_for_workflow_completion("approval-yes", timeout_in_seconds=20)
    expect_completed(state, {"approved": {"by": "alice"}})
    # The event won, not the 30 s timer.
    assert time.monotonic() - started < 20, time.monotonic() - started


def check_event_times_out():
    started = time.monotonic()
    state = run(approval, 1, "approval-no")
    expect_completed(state, {"timedOut": True})
    assert time.monotonic() - started >= 1.0
    # An event after the end changes nothing.
    client.raise_workflow_event("approval-no", "approve", data={"by": "late"})
    time.sleep(0.3)
    expect_completed(client.get_workflow_state("approval-no"), {"timedOut": True})


def check_events_buffered():
    # Raised before the workflow has run a step: kept, and delivered in order.
    client.schedule_new_workflow(collector, input=3, instance_id="collector-1")
    for item in ("first", "second", "third"):
        client.raise_workflow_event("collector-1", "item", data=item)
    state = client.wait_for_workflow_completion("collector-1", timeout_in_seconds=20)
    expect_completed(state, ["first", "second", "third"])


def check_child_workflows():
    state = run(parent, {"tag": "parent-1"}, "parent-1")
    got = output(state)
    assert state.runtime_status == wf.WorkflowStatus.COMPLETED, state.runtime_status
    assert got["child"] == "kid-a-b-c", got
    assert got["failed"] == {"message": "child f1 broke", "type": "ValueError"}, got
    ok = client.get_workflow_state("parent-1-ok")
    expect_completed(ok, "kid-a-b-c")
    assert ok.name == "chain", ok.name
    bad = client.get_workflow_state("parent-1-bad")
    assert bad.runtime_status == wf.WorkflowStatus.FAILED, bad.runtime_status
    assert bad.failure_details.message == "child f1 broke", bad.failure_details.message
    assert bad.failure_details.error_type == "ValueError", bad.failure_details.error_type
    assert activities_of("parent-1") == [("append", "a"), ("append", "b"), ("append", "c")]


def check_retry_then_success():
    state = run(retrying, {"tag": "retry-1", "fail_times": 2}, "retry-1")
    expect_completed(state, {"result": "ok after 3 attempts"})
    assert activities_of("retry-1") == [("flaky", 1), ("flaky", 2), ("flaky", 3)], activities_of("retry-1")


def check_retry_exhausted():
    state = run(doomed, {"tag": "doomed-1"}, "doomed-1")
    assert state.runtime_status == wf.WorkflowStatus.FAILED, state.runtime_status
    details = state.failure_details
    assert details is not None, "no failure details"
    # The workflow failed with the activity's last failure.
    assert details.message.endswith("failed: always fails (attempt 3)"), details.message
    assert details.error_type == "TaskFailedError", details.error_type
    assert activities_of("doomed-1") == [("always_fails", 1), ("always_fails", 2), ("always_fails", 3)]
    assert state.serialized_output is None, state.serialized_output
    # Three attempts, with a retry timer between each two.
    kinds = [e.event_type.name for e in history_of("doomed-1")]
    assert kinds.count("TASK_SCHEDULED") == 3 and kinds.count("TASK_FAILED") == 3, kinds
    assert kinds.count("TIMER_FIRED") == 2 and kinds[-1] == "EXECUTION_COMPLETED", kinds


def history_of(instance_id):
    return client.get_workflow_history(instance_id)


def check_continue_as_new():
    target = int(os.environ.get("WF_ITERATIONS", "1000"))
    started = time.monotonic()
    state = run(counter, {"n": 0, "target": target}, "counter-1", timeout=120)
    elapsed = time.monotonic() - started
    expect_completed(state, {"n": target, "instance": "counter-1"})
    # The instance's input is the last iteration's.
    assert json.loads(state.serialized_input) == {"n": target, "target": target}, state.serialized_input
    # Only the last iteration's history is kept: a handful of events, not thousands.
    history = history_of("counter-1")
    kinds = [e.event_type.name for e in history]
    assert len(history) <= 10, kinds
    assert kinds.count("EXECUTION_STARTED") == 1 and kinds[-1] == "EXECUTION_COMPLETED", kinds
    assert "TASK_SCHEDULED" not in kinds, kinds
    # Every iteration ran its activity, once.
    ticks = [n for (_, n) in activities_of("counter-1")]
    assert ticks == list(range(target)), (len(ticks), ticks[:5], ticks[-5:])
    print(f"continue-as-new: {target} iterations in {elapsed:.1f} s; final history {kinds}", flush=True)


def check_continue_as_new_keeps_events():
    # Raised all at once: most arrive while an earlier iteration runs, and
    # must reach a later one, in order.
    client.schedule_new_workflow(summer, input={"sum": 0, "left": 5, "seen": []}, instance_id="summer-1")
    for n in (1, 2, 3, 4, 5):
        client.raise_workflow_event("summer-1", "n", data=n)
    state = client.wait_for_workflow_completion("summer-1", timeout_in_seconds=20)
    expect_completed(state, {"sum": 15, "left": 0, "seen": [1, 2, 3, 4, 5]})


def check_monitor():
    state = run(monitor, {"tag": "job-1", "ready_after": 4, "checks": 0}, "monitor-1")
    expect_completed(state, {"job": "job-1", "checks": 4})
    assert activities_of("job-1") == [("check_job", n) for n in (1, 2, 3, 4)], activities_of("job-1")
    kinds = [e.event_type.name for e in history_of("monitor-1")]
    assert kinds.count("TASK_SCHEDULED") == 1 and "TIMER_CREATED" not in kinds, kinds


def check_terminate():
    client.schedule_new_workflow(forever, input={"with_child": True}, instance_id="forever-1")
    wait_until("child running", lambda: status_of("forever-1-child") == wf.WorkflowStatus.RUNNING)
    assert status_of("forever-1") == wf.WorkflowStatus.RUNNING
    client.terminate_workflow("forever-1", output="stopped by test")
    state = client.wait_for_workflow_completion("forever-1", timeout_in_seconds=10)
    assert state.runtime_status == wf.WorkflowStatus.TERMINATED, state.runtime_status
    assert output(state) == "stopped by test", state.serialized_output
    # Recursive by default: the child is terminated too.
    child = client.wait_for_workflow_completion("forever-1-child", timeout_in_seconds=10)
    assert child.runtime_status == wf.WorkflowStatus.TERMINATED, child.runtime_status
    # An event after the end does not revive it.
    client.raise_workflow_event("forever-1", "never", data=1)
    time.sleep(0.3)
    assert status_of("forever-1") == wf.WorkflowStatus.TERMINATED
    # A suspended instance can be terminated, and resuming it then changes nothing.
    client.schedule_new_workflow(forever, input={}, instance_id="forever-2")
    client.wait_for_workflow_start("forever-2", timeout_in_seconds=10)
    client.pause_workflow("forever-2")
    assert status_of("forever-2") == wf.WorkflowStatus.SUSPENDED, status_of("forever-2")
    client.terminate_workflow("forever-2", output={"why": "suspended too long"})
    state = client.wait_for_workflow_completion("forever-2", timeout_in_seconds=10)
    assert state.runtime_status == wf.WorkflowStatus.TERMINATED, state.runtime_status
    assert output(state) == {"why": "suspended too long"}, state.serialized_output
    client.resume_workflow("forever-2")
    assert status_of("forever-2") == wf.WorkflowStatus.TERMINATED, status_of("forever-2")


def check_suspend_resume():
    client.schedule_new_workflow(pausable, input="pause-1", instance_id="pause-1")
    client.wait_for_workflow_start("pause-1", timeout_in_seconds=10)
    client.pause_workflow("pause-1")
    assert status_of("pause-1") == wf.WorkflowStatus.SUSPENDED, status_of("pause-1")
    # While paused, its timer comes due and its event arrives: neither advances it.
    client.raise_workflow_event("pause-1", "go", data="went")
    time.sleep(2.0)
    assert status_of("pause-1") == wf.WorkflowStatus.SUSPENDED, status_of("pause-1")
    assert activities_of("pause-1") == [], activities_of("pause-1")
    client.resume_workflow("pause-1")
    state = client.wait_for_workflow_completion("pause-1", timeout_in_seconds=10)
    expect_completed(state, "went-done")
    assert activities_of("pause-1") == [("append", "done")]
    kinds = [e.event_type.name for e in history_of("pause-1")]
    assert "EXECUTION_SUSPENDED" in kinds and "EXECUTION_RESUMED" in kinds, kinds


def check_purge():
    # A running instance cannot be purged, and is still there after trying.
    client.schedule_new_workflow(forever, input={}, instance_id="purge-running")
    client.wait_for_workflow_start("purge-running", timeout_in_seconds=10)
    try:
        client.purge_workflow("purge-running")
        raise AssertionError("a running instance was purged")
    except grpc.RpcError:
        pass
    assert status_of("purge-running") == wf.WorkflowStatus.RUNNING
    client.terminate_workflow("purge-running")
    client.wait_for_workflow_completion("purge-running", timeout_in_seconds=10)
    client.purge_workflow("purge-running")
    assert client.get_workflow_state("purge-running") is None

    # parent-1 and its two children (check_child_workflows): purge is recursive.
    for instance_id in ("parent-1", "parent-1-ok", "parent-1-bad"):
        assert client.get_workflow_state(instance_id) is not None, instance_id
    client.purge_workflow("parent-1")
    for instance_id in ("parent-1", "parent-1-ok", "parent-1-bad"):
        assert client.get_workflow_state(instance_id) is None, instance_id
    try:
        history_of("parent-1")
        raise AssertionError("history of a purged instance")
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.NOT_FOUND, err.code()
    # The id can be used again.
    expect_completed(run(chain, {"tag": "reuse", "text": "again"}, "parent-1"), "again-a-b-c")


def check_order_happy():
    order_in = {"id": "o-1", "item": "widget", "qty": 3, "amount": 30, "card": "ok"}
    state = run(order, order_in, "order-1")
    expect_completed(state, {"status": "shipped", "steps": ["res-o-1", "pay-o-1", "track-o-1"]})
    ran = [name for (name, _) in activities_of("o-1")]
    assert ran == ["reserve_inventory", "process_payment", "ship_order"], ran
    assert STOCK["widget"] == 7 and CHARGES == {"o-1": 30}, (STOCK, CHARGES)


def check_order_compensated():
    order_in = {"id": "o-2", "item": "widget", "qty": 5, "amount": 50, "card": "declined"}
    state = run(order, order_in, "order-2")
    assert state.runtime_status == wf.WorkflowStatus.COMPLETED, state.runtime_status
    got = output(state)
    error = got.pop("error")
    assert got == {"status": "compensated", "steps": ["res-o-2"], "undone": ["refunded", "released"]}, got
    assert error.endswith("card declined for order o-2"), error
    ran = [name for (name, _) in activities_of("o-2")]
    assert ran == ["reserve_inventory", "process_payment", "refund_payment", "release_inventory"], ran
    # Everything undone: the stock is back, and only o-1's charge stands.
    assert STOCK["widget"] == 7 and CHARGES == {"o-1": 30}, (STOCK, CHARGES)


GROUPS = {
    "patterns": [
        check_chain,
        check_fan_out,
        check_child_workflows,
        check_retry_then_success,
        check_retry_exhausted,
        check_order_happy,
        check_order_compensated,
        check_monitor,
        check_purge,
    ],
    "control": [
        check_timer,
        check_event_arrives,
        check_event_times_out,
        check_events_buffered,
        check_terminate,
        check_suspend_resume,
        check_scheduled_start,
    ],
    "continue-as-new": [check_continue_as_new, check_continue_as_new_keeps_events],
}


def main():
    global client
    group = os.environ["WF_GROUP"]
    wfr.start()
    client = wf.DaprWorkflowClient()
    try:
        for check in GROUPS[group]:
            started = time.monotonic()
            check()
            print(f"scenario {check.__name__[len('check_'):]} ok {time.monotonic() - started:.2f}", flush=True)
    finally:
        client.close()
        wfr.shutdown()
    print(f"workflow checks passed: {group}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
