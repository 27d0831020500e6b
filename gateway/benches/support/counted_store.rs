//! A state store that counts what the gateway asks of the store it wraps,
//! by operation and by the kind of record (workflow instance record,
//! history event, index partition, placement lease), with the time the
//! store took. The workflows benchmark serves `outrigger-local` and
//! `outrigger-postgres` through it in its components process and reads the
//! counts over that process's stdin/stdout: a line `counts` is answered
//! with one line of JSON, [`Counts`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use outrigger_component_sdk::state::*;
use outrigger_component_sdk::{ComponentError, ErrorKind, Metadata, async_trait};

/// `"{op} {record}"` → (calls, total µs they took in the store, value bytes
/// read or written); plus `"{op} {record} conflict"` (an ETag mismatch) and
/// `"... error"` (calls only).
pub(crate) type Counts = BTreeMap<String, (u64, u64, u64)>;

/// The counts every wrapped store adds to.
pub(crate) type Shared = Arc<Mutex<Counts>>;

/// Which record a key is (the engine's layout, `docs/workflows.md`).
fn record(key: &str) -> &'static str {
    if key.contains("||wf||") {
        if key.ends_with("||meta") {
            "instance"
        } else if key.contains("||h||") {
            "history"
        } else if key.contains("||index||") {
            "index"
        } else {
            "workflow other"
        }
    } else if key.starts_with("outrigger||actors") {
        "placement"
    } else {
        "other"
    }
}

/// `inner`, counted into `counts`.
pub(crate) struct Counted<S> {
    inner: S,
    counts: Shared,
}

impl<S> Counted<S> {
    pub(crate) fn new(inner: S, counts: Shared) -> Self {
        Self { inner, counts }
    }

    fn add<T>(
        &self,
        what: String,
        started: Instant,
        bytes: usize,
        result: &Result<T, ComponentError>,
    ) {
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        if let Err(err) = result {
            let outcome = match err.kind() {
                ErrorKind::EtagMismatch => "conflict",
                _ => "error",
            };
            counts.entry(format!("{what} {outcome}")).or_default().0 += 1;
        }
        let entry = counts.entry(what).or_default();
        entry.0 += 1;
        entry.1 += took;
        entry.2 += bytes as u64;
    }
}

/// The record kinds a transaction touches, e.g. `history+instance`.
fn touched(ops: &[TransactionOperation]) -> String {
    let mut kinds: Vec<&str> = ops
        .iter()
        .map(|op| match op {
            TransactionOperation::Set(set) => record(&set.key),
            TransactionOperation::Delete(delete) => record(&delete.key),
        })
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds.join("+")
}

#[async_trait]
impl<S: StateStore> StateStore for Counted<S> {
    async fn init(&self, metadata: Metadata) -> Result<(), ComponentError> {
        self.inner.init(metadata).await
    }

    fn features(&self) -> Vec<StateFeature> {
        self.inner.features()
    }

    async fn get(&self, request: GetRequest) -> Result<Option<StateItem>, ComponentError> {
        let what = format!("get {}", record(&request.key));
        let started = Instant::now();
        let result = self.inner.get(request).await;
        let bytes = match &result {
            Ok(Some(item)) => item.data.len(),
            _ => 0,
        };
        self.add(what, started, bytes, &result);
        result
    }

    async fn set(&self, request: SetRequest) -> Result<(), ComponentError> {
        let what = format!("set {}", record(&request.key));
        let bytes = request.value.len();
        let started = Instant::now();
        let result = self.inner.set(request).await;
        self.add(what, started, bytes, &result);
        result
    }

    async fn delete(&self, request: DeleteRequest) -> Result<(), ComponentError> {
        let what = format!("delete {}", record(&request.key));
        let started = Instant::now();
        let result = self.inner.delete(request).await;
        self.add(what, started, 0, &result);
        result
    }

    async fn bulk_get(
        &self,
        requests: Vec<GetRequest>,
    ) -> Result<Vec<BulkGetItem>, ComponentError> {
        let what = format!(
            "bulk_get {}",
            requests.first().map_or("empty", |r| record(&r.key))
        );
        let started = Instant::now();
        let result = self.inner.bulk_get(requests).await;
        let bytes = result.as_ref().map_or(0, |items| {
            items
                .iter()
                .filter_map(|i| i.item.as_ref().map(|i| i.data.len()))
                .sum()
        });
        self.add(what, started, bytes, &result);
        result
    }

    async fn bulk_set(&self, requests: Vec<SetRequest>) -> Result<(), ComponentError> {
        let started = Instant::now();
        let result = self.inner.bulk_set(requests).await;
        self.add("bulk_set".into(), started, 0, &result);
        result
    }

    async fn bulk_delete(&self, requests: Vec<DeleteRequest>) -> Result<(), ComponentError> {
        let started = Instant::now();
        let result = self.inner.bulk_delete(requests).await;
        self.add("bulk_delete".into(), started, 0, &result);
        result
    }

    async fn transact(&self, request: TransactionRequest) -> Result<(), ComponentError> {
        let what = format!("transact {}", touched(&request.operations));
        let bytes = request
            .operations
            .iter()
            .map(|op| match op {
                TransactionOperation::Set(set) => set.value.len(),
                TransactionOperation::Delete(_) => 0,
            })
            .sum();
        let started = Instant::now();
        let result = self.inner.transact(request).await;
        self.add(what, started, bytes, &result);
        result
    }

    async fn query(&self, request: QueryRequest) -> Result<QueryResponse, ComponentError> {
        let started = Instant::now();
        let result = self.inner.query(request).await;
        self.add("query".into(), started, 0, &result);
        result
    }

    fn max_transaction_size(&self) -> Option<u64> {
        self.inner.max_transaction_size()
    }

    async fn ping(&self) -> Result<(), ComponentError> {
        self.inner.ping().await
    }
}

/// In the components process: answer `counts` lines on stdin with the
/// counts as one JSON line on stdout, until stdin closes (a thread of its
/// own: blocking reads).
pub(crate) fn answer_on_stdio(counts: Shared) {
    use std::io::{BufRead, Write};
    std::thread::spawn(move || {
        let mut out = std::io::stdout();
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { return };
            if line.trim() != "counts" {
                continue;
            }
            let snapshot = counts.lock().map(|c| c.clone()).unwrap_or_default();
            let json = serde_json::to_string(&snapshot).unwrap_or_else(|_| "{}".into());
            if writeln!(out, "{json}").is_err() || out.flush().is_err() {
                return;
            }
        }
    });
}

/// The benchmark's side of [`answer_on_stdio`].
pub(crate) struct CountsReader {
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl CountsReader {
    pub(crate) fn new(child: &mut tokio::process::Child) -> Option<Self> {
        use tokio::io::AsyncBufReadExt;
        Some(Self {
            stdin: child.stdin.take()?,
            lines: tokio::io::BufReader::new(child.stdout.take()?).lines(),
        })
    }

    /// The counts so far (empty if the components process does not answer).
    pub(crate) async fn read(&mut self) -> Counts {
        use tokio::io::AsyncWriteExt;
        if self.stdin.write_all(b"counts\n").await.is_err() || self.stdin.flush().await.is_err() {
            return Counts::new();
        }
        match self.lines.next_line().await {
            Ok(Some(line)) => serde_json::from_str(&line).unwrap_or_default(),
            _ => Counts::new(),
        }
    }
}

/// `after - before`, entry by entry, without the entries that did not change.
pub(crate) fn delta(before: &Counts, after: &Counts) -> Counts {
    after
        .iter()
        .filter_map(|(k, (n, us, bytes))| {
            let (n0, us0, bytes0) = before.get(k).copied().unwrap_or_default();
            (*n > n0).then(|| {
                let took = us.saturating_sub(us0);
                (k.clone(), (n - n0, took, bytes.saturating_sub(bytes0)))
            })
        })
        .collect()
}
