//! Durable workflows: the Durable Task engine behind `TaskHubSidecarService`
//! and Dapr's workflow API, with every instance's history in the actor
//! state store.
//!
//! - [`engine`]: one orchestration step at a time per instance; each step's
//!   new history events, its outbox (activities, timers, child workflows)
//!   and the instance's status are written in one transaction.
//! - [`workers`]: the SDK workers connected over `GetWorkItems`, and the
//!   work items waiting for their completion.
//! - [`records`]: what is stored, and where.
//! - [`events`]: history events as the SDK replays them.
//!
//! The API adapters (`api::grpc::taskhub`, the Dapr workflow HTTP and gRPC
//! routes) only call the methods of [`Workflows`].

mod engine;
mod events;
mod ownership;
mod records;
mod workers;

use std::sync::Arc;

use crate::error::{ApiError, codes};
pub use records::{Failure, Instance, Status};
pub use workers::{Completion, Workers};

/// Unix milliseconds of a protobuf timestamp.
pub fn millis(ts: &prost_types::Timestamp) -> i64 {
    events::millis(ts)
}

/// A protobuf timestamp of Unix milliseconds.
pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    events::timestamp(ms)
}

/// The longest instance id (as daprd).
pub const MAX_INSTANCE_ID: usize = 64;

/// The workflow API of one gateway.
#[derive(Debug)]
pub struct Workflows {
    engine: Option<Arc<engine::Engine>>,
    problem: String,
    workers: Arc<Workers>,
}

/// Which instances to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only these statuses (all when empty).
    pub statuses: Vec<Status>,
}

fn not_ready(problem: &str) -> ApiError {
    ApiError::new(codes::ERR_WORKFLOW_ENGINE, problem.to_owned())
}

/// Check an instance id as daprd does: 1–64 letters, digits, `-` or `_`.
///
/// # Errors
/// `ERR_INSTANCE_ID_TOO_LONG` or `ERR_INSTANCE_ID_INVALID` naming the id.
pub fn check_instance_id(id: &str) -> Result<(), ApiError> {
    if id.len() > MAX_INSTANCE_ID {
        return Err(ApiError::new(
            codes::ERR_INSTANCE_ID_TOO_LONG,
            format!("instance id {id:?} is longer than {MAX_INSTANCE_ID} characters"),
        ));
    }
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::new(
            codes::ERR_INSTANCE_ID_INVALID,
            format!("instance id {id:?} must be letters, digits, '-' or '_'"),
        ));
    }
    Ok(())
}

impl Workflows {
    /// The workflow API over the actor state store (`store`); without one,
    /// every call fails naming why.
    pub(crate) fn new(app_id: &str, store: Result<crate::actors::ActorStore, String>) -> Self {
        let workers = Arc::new(Workers::default());
        match store {
            Ok(store) => Self {
                engine: Some(Arc::new(engine::Engine::new(
                    app_id,
                    store,
                    Arc::clone(&workers),
                ))),
                problem: String::new(),
                workers,
            },
            Err(why) => Self {
                engine: None,
                problem: format!("workflows need the actor state store: {why}"),
                workers,
            },
        }
    }

    fn engine(&self) -> Result<&Arc<engine::Engine>, ApiError> {
        self.engine.as_ref().ok_or_else(|| not_ready(&self.problem))
    }

    /// The connected SDK workers (`GetWorkItems`).
    pub fn workers(&self) -> &Arc<Workers> {
        &self.workers
    }

    /// Run until `shutdown`: once a worker connects, take part in placement
    /// (`placement`: this gateway's host entry for the internal workflow
    /// type; `None` runs every instance here), resume unfinished instances
    /// and keep timers running.
    pub(crate) fn start(
        &self,
        tracker: &tokio_util::task::TaskTracker,
        shutdown: tokio_util::sync::CancellationToken,
        placement: Option<Arc<crate::actors::placement::Placement>>,
    ) {
        if let Some(engine) = &self.engine {
            engine.start(tracker, shutdown, placement);
        }
    }

    /// The internal actor type whose leases say which gateway runs an
    /// instance (daprd's name for it).
    pub fn placement_type(app_id: &str) -> String {
        let namespace = std::env::var("NAMESPACE")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        format!("dapr.internal.{namespace}.{app_id}.workflow")
    }

    /// Schedule a new instance of workflow `name`; `instance_id` is generated
    /// when `None`. Returns the instance id.
    ///
    /// # Errors
    /// A bad id, an id already in use by a running instance, a store failure.
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(block = "workflows", op = "start", name)
    )]
    pub async fn start_instance(
        &self,
        name: &str,
        instance_id: Option<String>,
        input: Option<String>,
    ) -> Result<String, ApiError> {
        self.start_instance_at(name, instance_id, input, None).await
    }

    /// [`Workflows::start_instance`], with the first step held until
    /// `start_at_ms` (Unix ms) when that is in the future.
    ///
    /// # Errors
    /// As for [`Workflows::start_instance`].
    pub async fn start_instance_at(
        &self,
        name: &str,
        instance_id: Option<String>,
        input: Option<String>,
        start_at_ms: Option<i64>,
    ) -> Result<String, ApiError> {
        if name.is_empty() {
            return Err(ApiError::new(
                codes::ERR_WORKFLOW_NAME_MISSING,
                "workflow name: must not be empty",
            ));
        }
        let id = match instance_id.filter(|i| !i.is_empty()) {
            Some(id) => {
                check_instance_id(&id)?;
                id
            }
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        self.engine()?
            .start_instance(name, &id, input, None, start_at_ms)
            .await?;
        Ok(id)
    }

    /// An instance's state; `None` when it does not exist.
    ///
    /// # Errors
    /// A store failure.
    pub async fn get(&self, instance_id: &str) -> Result<Option<Instance>, ApiError> {
        self.engine()?.get(instance_id).await
    }

    /// Wait until the instance has started (`completion: false`) or reached
    /// a terminal status (`completion: true`); `None` when it does not exist.
    ///
    /// # Errors
    /// A store failure.
    pub async fn wait(
        &self,
        instance_id: &str,
        completion: bool,
    ) -> Result<Option<Instance>, ApiError> {
        self.engine()?.wait(instance_id, completion).await
    }

    /// Deliver external event `name` with `input` (JSON text).
    ///
    /// # Errors
    /// `ERR_INSTANCE_ID_NOT_FOUND`, or a store failure.
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(block = "workflows", op = "raise_event", instance_id)
    )]
    pub async fn raise_event(
        &self,
        instance_id: &str,
        name: &str,
        input: Option<String>,
    ) -> Result<(), ApiError> {
        if name.is_empty() {
            return Err(ApiError::new(
                codes::ERR_WORKFLOW_EVENT_NAME_MISSING,
                "event name: must not be empty",
            ));
        }
        self.engine()?.raise_event(instance_id, name, input).await
    }

    /// Terminate an instance (and, with `recursive`, its child workflows);
    /// `output` becomes its output.
    ///
    /// # Errors
    /// `ERR_INSTANCE_ID_NOT_FOUND`, or a store failure.
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(block = "workflows", op = "terminate", instance_id)
    )]
    pub async fn terminate(
        &self,
        instance_id: &str,
        output: Option<String>,
        recursive: bool,
    ) -> Result<(), ApiError> {
        self.engine()?
            .terminate(instance_id, output, recursive)
            .await
    }

    /// Suspend (`true`) or resume (`false`) an instance.
    ///
    /// # Errors
    /// `ERR_INSTANCE_ID_NOT_FOUND`, or a store failure.
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(block = "workflows", op = "suspend", instance_id, suspend)
    )]
    pub async fn suspend(
        &self,
        instance_id: &str,
        suspend: bool,
        reason: Option<String>,
    ) -> Result<(), ApiError> {
        self.engine()?.suspend(instance_id, suspend, reason).await
    }

    /// Delete a finished instance's state (with `recursive`, its children's
    /// too). Returns how many instances were deleted.
    ///
    /// # Errors
    /// `ERR_INSTANCE_ID_NOT_FOUND`, an instance still running, or a store failure.
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(block = "workflows", op = "purge", instance_id)
    )]
    pub async fn purge(&self, instance_id: &str, recursive: bool) -> Result<u32, ApiError> {
        self.engine()?.purge(instance_id, recursive).await
    }

    /// Instances and their statuses, sorted by id.
    ///
    /// # Errors
    /// A store failure.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<(String, Status)>, ApiError> {
        self.engine()?.list(filter).await
    }

    /// An instance's full history (encoded `HistoryEvent`s, oldest first).
    ///
    /// # Errors
    /// `ERR_INSTANCE_ID_NOT_FOUND`, or a store failure.
    pub async fn history(
        &self,
        instance_id: &str,
    ) -> Result<Vec<outrigger_proto::durabletask::HistoryEvent>, ApiError> {
        self.engine()?.history(instance_id).await
    }
}
