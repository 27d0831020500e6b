//! An in-memory state store component: ETags, first-write concurrency,
//! transactions. The whole component is the `MemoryStore` impl below.
//!
//! Run with:
//!     cargo run -p outrigger-component-sdk --example memory
//! It listens on `$DAPR_COMPONENTS_SOCKETS_FOLDER/memory.sock` (default
//! `/tmp/dapr-components-sockets/memory.sock`); declare it in a resources
//! folder as `type: state.memory`. Stop it with Ctrl-C.

use std::collections::HashMap;
use std::sync::Mutex;

use outrigger_component_sdk::state::*;
use outrigger_component_sdk::{
    ComponentError, ComponentServer, Metadata, async_trait, shutdown_signal,
};

/// Values with a version number that serves as the ETag.
#[derive(Default)]
pub(crate) struct MemoryStore {
    items: Mutex<HashMap<String, (Vec<u8>, u64)>>,
}

type Items = HashMap<String, (Vec<u8>, u64)>;

fn check_etag(
    items: &Items,
    key: &str,
    etag: &Option<String>,
    first_write: bool,
) -> Result<(), ComponentError> {
    let current = items.get(key).map(|(_, v)| *v);
    match etag {
        Some(etag) => {
            let wanted: u64 = etag.parse().map_err(|_| {
                ComponentError::etag_invalid(format!("{etag:?} is not an ETag of this store"))
            })?;
            if current != Some(wanted) {
                return Err(ComponentError::etag_mismatch(format!(
                    "{key}: ETag {etag} is not current"
                )));
            }
        }
        None if first_write && current.is_some() => {
            return Err(ComponentError::etag_mismatch(format!(
                "{key}: exists; first-write needs its ETag"
            )));
        }
        None => {}
    }
    Ok(())
}

fn apply(items: &mut Items, op: TransactionOperation) -> Result<(), ComponentError> {
    match op {
        TransactionOperation::Set(r) => {
            check_etag(
                items,
                &r.key,
                &r.etag,
                r.concurrency == Concurrency::FirstWrite,
            )?;
            let version = items.get(&r.key).map_or(1, |(_, v)| v + 1);
            items.insert(r.key, (r.value, version));
        }
        TransactionOperation::Delete(r) => {
            check_etag(items, &r.key, &r.etag, false)?;
            items.remove(&r.key);
        }
    }
    Ok(())
}

impl MemoryStore {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Items>, ComponentError> {
        self.items
            .lock()
            .map_err(|_| ComponentError::internal("store lock poisoned"))
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn init(&self, _metadata: Metadata) -> Result<(), ComponentError> {
        Ok(())
    }

    fn features(&self) -> Vec<StateFeature> {
        vec![StateFeature::Etag, StateFeature::Transactional]
    }

    async fn get(&self, req: GetRequest) -> Result<Option<StateItem>, ComponentError> {
        Ok(self.lock()?.get(&req.key).map(|(data, version)| StateItem {
            data: data.clone(),
            etag: Some(version.to_string()),
            ..Default::default()
        }))
    }

    async fn set(&self, req: SetRequest) -> Result<(), ComponentError> {
        apply(&mut *self.lock()?, TransactionOperation::Set(req))
    }

    async fn delete(&self, req: DeleteRequest) -> Result<(), ComponentError> {
        apply(&mut *self.lock()?, TransactionOperation::Delete(req))
    }

    async fn transact(&self, req: TransactionRequest) -> Result<(), ComponentError> {
        let mut items = self.lock()?;
        // Apply to a copy so a failing operation leaves nothing behind.
        let mut draft = items.clone();
        for op in req.operations {
            apply(&mut draft, op)?;
        }
        *items = draft;
        Ok(())
    }
}

#[allow(dead_code)] // the SDK's tests include this file for MemoryStore alone
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    ComponentServer::from_env()
        .service("memory", |s| s.state_store(MemoryStore::default))
        .serve(shutdown_signal())
        .await?;
    Ok(())
}
