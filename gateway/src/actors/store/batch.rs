//! Concurrent calls to the actor state store, coalesced.
//!
//! Every store call crosses to the component's process and back, and on a
//! busy gateway (hundreds of workflow instances or actors at once) that
//! round trip, not the database, is most of the cost. So reads and writes
//! queue here: while fewer than a lane's limit of calls are out, a call
//! goes at once, alone; once the limit is reached, the calls that arrive
//! meanwhile leave together in the next one: reads as one `BulkGet`,
//! writes as one `Transact`.
//!
//! A batched transaction is all-or-nothing, so one write whose condition
//! fails (a stale ETag) would fail its neighbours: a batch that fails is
//! run again one caller at a time, and each caller gets the answer its own
//! call gets. Two writes to one key never share a batch (the later one
//! waits for the next), so writes to a key keep the order they came in.
//! Writes to the records gateways race for (placement and reminders) are
//! never batched.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use tokio::sync::oneshot;

use outrigger_proto::components as pb;

use super::{Store, StoreError};

/// Reads out at once before later ones are batched.
const READS_OUT: usize = 4;
/// Writes out at once before later ones are batched (SQLite has one
/// writer anyway: one batch runs while the next one travels).
const WRITES_OUT: usize = 2;
/// Callers per batch at most.
const MAX_CALLERS: usize = 64;
/// Bytes of values per write batch at most (well under a component's 4 MB
/// message limit).
const MAX_BYTES: usize = 1 << 20;

/// A read's answer: value, ETag and metadata, `None` when missing.
pub(super) type Got = Option<super::Record>;

/// One caller's write.
pub(super) enum Write {
    Set(pb::SetRequest),
    Delete(pb::DeleteRequest),
    Transact(Vec<pb::TransactionalStateOperation>),
}

impl Write {
    fn keys(&self) -> Vec<&str> {
        use pb::transactional_state_operation::Request;
        match self {
            Self::Set(set) => vec![set.key.as_str()],
            Self::Delete(delete) => vec![delete.key.as_str()],
            Self::Transact(ops) => ops
                .iter()
                .filter_map(|op| match &op.request {
                    Some(Request::Set(set)) => Some(set.key.as_str()),
                    Some(Request::Delete(delete)) => Some(delete.key.as_str()),
                    None => None,
                })
                .collect(),
        }
    }

    fn bytes(&self) -> usize {
        use pb::transactional_state_operation::Request;
        match self {
            Self::Set(set) => set.value.len() + set.key.len(),
            Self::Delete(delete) => delete.key.len(),
            Self::Transact(ops) => ops
                .iter()
                .map(|op| match &op.request {
                    Some(Request::Set(set)) => set.value.len() + set.key.len(),
                    Some(Request::Delete(delete)) => delete.key.len(),
                    None => 0,
                })
                .sum(),
        }
    }

    fn into_ops(self) -> Vec<pb::TransactionalStateOperation> {
        use pb::transactional_state_operation::Request;
        match self {
            Self::Set(set) => vec![pb::TransactionalStateOperation {
                request: Some(Request::Set(set)),
            }],
            Self::Delete(delete) => vec![pb::TransactionalStateOperation {
                request: Some(Request::Delete(delete)),
            }],
            Self::Transact(ops) => ops,
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

struct Lane<Req, Res> {
    out: usize,
    waiting: VecDeque<(Req, Reply<Res>)>,
}

impl<Req, Res> Default for Lane<Req, Res> {
    fn default() -> Self {
        Self {
            out: 0,
            waiting: VecDeque::new(),
        }
    }
}

/// The queues of one [`Store`] (shared by its clones).
#[derive(Default)]
pub(super) struct Batches {
    reads: Mutex<Lane<String, Got>>,
    writes: Mutex<Lane<Write, ()>>,
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Batches")
    }
}

fn dropped() -> StoreError {
    StoreError::Failed("the actor state store call was dropped (shutting down?)".to_owned())
}

/// Queue `request` on `lane`; `true`: start a runner (fewer than `limit` out).
fn enqueue<Req, Res>(
    lane: &Mutex<Lane<Req, Res>>,
    limit: usize,
    request: Req,
    reply: Reply<Res>,
) -> bool {
    let Ok(mut lane) = lane.lock() else {
        let _ = reply.send(Err(StoreError::Failed(
            "the actor state store queue is poisoned".to_owned(),
        )));
        return false;
    };
    lane.waiting.push_back((request, reply));
    if lane.out < limit {
        lane.out += 1;
        true
    } else {
        false
    }
}

impl Store {
    /// [`Store::get_raw`], through the read queue.
    pub(super) async fn queued_get(&self, key: &str) -> Result<Got, StoreError> {
        let (reply, answer) = oneshot::channel();
        if enqueue(&self.batches.reads, READS_OUT, key.to_owned(), reply) {
            let store = self.clone();
            tokio::spawn(async move { store.run_reads().await });
        }
        answer.await.map_err(|_| dropped())?
    }

    /// A write through the write queue; placement and reminder records go
    /// alone (see [`contended`]).
    pub(super) async fn queued_write(&self, write: Write) -> Result<(), StoreError> {
        if write.keys().iter().any(|key| contended(key)) {
            return self.write_now(write).await;
        }
        let (reply, answer) = oneshot::channel();
        if enqueue(&self.batches.writes, WRITES_OUT, write, reply) {
            let store = self.clone();
            tokio::spawn(async move { store.run_writes().await });
        }
        answer.await.map_err(|_| dropped())?
    }

    /// Take reads off the queue until it is empty.
    async fn run_reads(self) {
        loop {
            let batch: Vec<(String, Reply<Got>)> = {
                let Ok(mut lane) = self.batches.reads.lock() else {
                    return;
                };
                if lane.waiting.is_empty() {
                    lane.out -= 1;
                    return;
                }
                let n = lane.waiting.len().min(MAX_CALLERS);
                lane.waiting.drain(..n).collect()
            };
            if let [(key, _)] = batch.as_slice() {
                let got = self.get_now(key).await;
                if let Some((_, reply)) = batch.into_iter().next() {
                    let _ = reply.send(got);
                }
                continue;
            }
            let keys: Vec<String> = batch.iter().map(|(key, _)| key.clone()).collect();
            match self.bulk_get_now(&keys).await {
                Ok(found) => {
                    for (key, reply) in batch {
                        let _ = reply.send(match found.get(&key) {
                            None => Ok(None),
                            Some(Ok(item)) => Ok(Some(item.clone())),
                            Some(Err(err)) => Err(err.clone()),
                        });
                    }
                }
                Err(err) => {
                    for (_, reply) in batch {
                        let _ = reply.send(Err(err.clone()));
                    }
                }
            }
        }
    }

    /// Take writes off the queue until it is empty.
    async fn run_writes(self) {
        loop {
            let batch: Vec<(Write, Reply<()>)> = {
                let Ok(mut lane) = self.batches.writes.lock() else {
                    return;
                };
                if lane.waiting.is_empty() {
                    lane.out -= 1;
                    return;
                }
                take_writes(&mut lane.waiting)
            };
            if batch.len() == 1 {
                if let Some((write, reply)) = batch.into_iter().next() {
                    let _ = reply.send(self.write_now(write).await);
                }
                continue;
            }
            let ops: Vec<pb::TransactionalStateOperation> = batch
                .iter()
                .flat_map(|(write, _)| write.clone_ops())
                .collect();
            if self.transact_now(ops).await.is_ok() {
                for (_, reply) in batch {
                    let _ = reply.send(Ok(()));
                }
                continue;
            }
            // Someone's condition (or something else) failed the batch:
            // each caller's own call decides its answer.
            let singles = batch.into_iter().map(|(write, reply)| {
                let store = &self;
                async move {
                    let _ = reply.send(store.write_now(write).await);
                }
            });
            futures::future::join_all(singles).await;
        }
    }

    async fn write_now(&self, write: Write) -> Result<(), StoreError> {
        match write {
            Write::Set(set) => self.set_now(set).await,
            Write::Delete(delete) => self.delete_now(delete).await,
            Write::Transact(ops) => self.transact_now(ops).await,
        }
    }
}

impl Write {
    fn clone_ops(&self) -> Vec<pb::TransactionalStateOperation> {
        match self {
            Self::Set(set) => Self::Set(set.clone()).into_ops(),
            Self::Delete(delete) => Self::Delete(delete.clone()).into_ops(),
            Self::Transact(ops) => ops.clone(),
        }
    }
}

/// Whether gateways race for `key`: placement leases, the host directory
/// and reminder partitions (`outrigger||actors||...`). A write to one of
/// them loses often (a lease taken meanwhile), and the loss would fail its
/// whole batch; they are also the records whose latency keeps leases
/// alive, so they never wait in the queue.
fn contended(key: &str) -> bool {
    key.starts_with(super::PREFIX)
}

/// The next batch: queued writes in order, skipping (for the next batch)
/// any that touches a key already in this one, within the batch limits.
fn take_writes(waiting: &mut VecDeque<(Write, Reply<()>)>) -> Vec<(Write, Reply<()>)> {
    let mut batch = Vec::new();
    let mut keys: HashSet<String> = HashSet::new();
    let mut bytes = 0;
    let mut kept = VecDeque::new();
    while let Some((write, reply)) = waiting.pop_front() {
        let size = write.bytes();
        let full = batch.len() >= MAX_CALLERS || (!batch.is_empty() && bytes + size > MAX_BYTES);
        let clash = write.keys().iter().any(|key| keys.contains(*key));
        if full {
            kept.push_back((write, reply));
            break;
        }
        if clash {
            kept.push_back((write, reply));
            continue;
        }
        keys.extend(write.keys().into_iter().map(str::to_owned));
        bytes += size;
        batch.push((write, reply));
    }
    kept.append(waiting);
    *waiting = kept;
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, len: usize) -> Write {
        Write::Set(pb::SetRequest {
            key: key.to_owned(),
            value: vec![0; len],
            ..Default::default()
        })
    }

    fn queue(writes: Vec<Write>) -> VecDeque<(Write, Reply<()>)> {
        writes
            .into_iter()
            .map(|w| (w, oneshot::channel().0))
            .collect()
    }

    fn keys(batch: &[(Write, Reply<()>)]) -> Vec<String> {
        batch
            .iter()
            .flat_map(|(w, _)| w.keys().into_iter().map(str::to_owned))
            .collect()
    }

    #[test]
    fn placement_and_reminder_records_are_contended_workflow_records_not() {
        assert!(contended("outrigger||actors||lease||Counter||id-1"));
        assert!(!contended("outrigger||wf||app||i-1||meta"));
        assert!(!contended("app||Counter||id-1||state"));
    }

    #[test]
    fn a_second_write_to_a_key_waits_for_the_next_batch_in_order() {
        let mut waiting = queue(vec![set("a", 1), set("b", 1), set("a", 2), set("c", 1)]);
        let first = take_writes(&mut waiting);
        assert_eq!(keys(&first), ["a", "b", "c"]);
        let second = take_writes(&mut waiting);
        assert_eq!(keys(&second), ["a"]);
        assert!(matches!(&second[0].0, Write::Set(s) if s.value.len() == 2));
        assert!(waiting.is_empty());
    }

    #[test]
    fn batches_stop_at_the_caller_and_byte_limits_but_never_starve_one() {
        let mut waiting = queue(
            (0..MAX_CALLERS + 3)
                .map(|i| set(&i.to_string(), 1))
                .collect(),
        );
        assert_eq!(take_writes(&mut waiting).len(), MAX_CALLERS);
        assert_eq!(take_writes(&mut waiting).len(), 3);

        let mut waiting = queue(vec![set("big", MAX_BYTES + 1), set("small", 1)]);
        assert_eq!(keys(&take_writes(&mut waiting)), ["big"]);
        assert_eq!(keys(&take_writes(&mut waiting)), ["small"]);
    }
}
