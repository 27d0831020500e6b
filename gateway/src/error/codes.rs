//! The error-code catalogue: every code the API returns, with its HTTP status
//! and gRPC code as daprd uses them.

use axum::http::StatusCode;
use tonic::Code;

/// One catalogue line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Dapr error code.
    pub code: &'static str,
    /// Default HTTP status.
    pub http: StatusCode,
    /// Default gRPC code.
    pub grpc: Code,
}

macro_rules! catalogue {
    ($($(#[$doc:meta])* $name:ident = $http:ident, $grpc:ident;)*) => {
        $(
            $(#[$doc])*
            pub const $name: Entry = Entry { code: stringify!($name), http: StatusCode::$http, grpc: Code::$grpc };
        )*
        /// Every entry, for documentation and tests.
        pub const ALL: &[Entry] = &[$($name),*];
    };
}

catalogue! {
    /// Unknown state store name.
    ERR_STATE_STORE_NOT_FOUND = BAD_REQUEST, InvalidArgument;
    /// No state store is configured at all.
    ERR_STATE_STORE_NOT_CONFIGURED = INTERNAL_SERVER_ERROR, FailedPrecondition;
    /// Reading state failed.
    ERR_STATE_GET = INTERNAL_SERVER_ERROR, Internal;
    /// Saving state failed (409 / Aborted on an ETag mismatch, 400 on a bad ETag).
    ERR_STATE_SAVE = INTERNAL_SERVER_ERROR, Internal;
    /// Deleting state failed (ETag statuses as for save).
    ERR_STATE_DELETE = INTERNAL_SERVER_ERROR, Internal;
    /// A bulk read failed.
    ERR_STATE_BULK_GET = INTERNAL_SERVER_ERROR, Internal;
    /// A transaction failed (ETag statuses as for save).
    ERR_STATE_TRANSACTION = INTERNAL_SERVER_ERROR, Internal;
    /// A query failed.
    ERR_STATE_QUERY = INTERNAL_SERVER_ERROR, Internal;
    /// The store lacks the capability (transactions, query).
    ERR_STATE_STORE_NOT_SUPPORTED = INTERNAL_SERVER_ERROR, Unimplemented;
    /// More transaction operations than the store allows.
    ERR_STATE_STORE_TOO_MANY_TRANSACTIONS = BAD_REQUEST, InvalidArgument;
    /// A transaction operation other than upsert/delete.
    ERR_NOT_SUPPORTED_STATE_OPERATION = BAD_REQUEST, InvalidArgument;
    /// Malformed request: bad JSON, missing or illegal key.
    ERR_MALFORMED_REQUEST = BAD_REQUEST, InvalidArgument;
    /// The request body could not be read (e.g. too large).
    ERR_BODY_READ = BAD_REQUEST, InvalidArgument;
    /// Unknown secret store (daprd answers 401 here).
    ERR_SECRET_STORE_NOT_FOUND = UNAUTHORIZED, InvalidArgument;
    /// No secret store is configured.
    ERR_SECRET_STORES_NOT_CONFIGURED = INTERNAL_SERVER_ERROR, FailedPrecondition;
    /// Reading a secret failed.
    ERR_SECRET_GET = INTERNAL_SERVER_ERROR, Internal;
    /// Unknown output binding or a failed invocation.
    ERR_INVOKE_OUTPUT_BINDING = INTERNAL_SERVER_ERROR, Internal;
    /// Not ready yet.
    ERR_HEALTH_NOT_READY = INTERNAL_SERVER_ERROR, Internal;
    /// Outbound side not ready yet.
    ERR_OUTBOUND_HEALTH_NOT_READY = INTERNAL_SERVER_ERROR, Internal;
    /// `?appid=` does not match this gateway.
    ERR_HEALTH_APPID_NOT_MATCH = INTERNAL_SERVER_ERROR, Internal;
    /// The API exists in Dapr but not here yet.
    ERR_API_UNIMPLEMENTED = NOT_IMPLEMENTED, Unimplemented;
    /// A component is declared but not ready (its process or backend is down).
    ERR_COMPONENT_NOT_READY = INTERNAL_SERVER_ERROR, Unavailable;
    /// Unknown pub/sub component.
    ERR_PUBSUB_NOT_FOUND = NOT_FOUND, InvalidArgument;
    /// No pub/sub component is configured.
    ERR_PUBSUB_NOT_CONFIGURED = BAD_REQUEST, FailedPrecondition;
    /// Publish without a topic.
    ERR_TOPIC_NAME_EMPTY = NOT_FOUND, InvalidArgument;
    /// The broker refused or failed the publish.
    ERR_PUBSUB_PUBLISH_MESSAGE = INTERNAL_SERVER_ERROR, Internal;
    /// A body sent as a CloudEvent is not a valid one.
    ERR_PUBSUB_CLOUD_EVENTS_SER = INTERNAL_SERVER_ERROR, InvalidArgument;
    /// Bad publish metadata (e.g. `ttlInSeconds`).
    ERR_PUBSUB_REQUEST_METADATA = BAD_REQUEST, InvalidArgument;
    /// Bad bulk-publish entries (missing or duplicate `entryId`).
    ERR_PUBSUB_EVENTS_SER = BAD_REQUEST, InvalidArgument;
    /// Metadata update failed.
    ERR_METADATA_SET = BAD_REQUEST, InvalidArgument;
    /// Unknown configuration store.
    ERR_CONFIGURATION_STORE_NOT_FOUND = BAD_REQUEST, InvalidArgument;
    /// No configuration store is configured.
    ERR_CONFIGURATION_STORE_NOT_CONFIGURED = INTERNAL_SERVER_ERROR, FailedPrecondition;
    /// Reading configuration failed.
    ERR_CONFIGURATION_GET = INTERNAL_SERVER_ERROR, Internal;
    /// Subscribing to configuration failed.
    ERR_CONFIGURATION_SUBSCRIBE = INTERNAL_SERVER_ERROR, Internal;
    /// Ending a configuration subscription failed (unknown id).
    ERR_CONFIGURATION_UNSUBSCRIBE = INTERNAL_SERVER_ERROR, Internal;
    /// Service invocation failed before the callee app answered: not found,
    /// unreachable, a resiliency timeout (gRPC `DeadlineExceeded`), or an
    /// open circuit breaker ("circuit breaker is open").
    ERR_DIRECT_INVOKE = INTERNAL_SERVER_ERROR, Internal;
    /// Configuration updates for an HTTP app need `--app-port`.
    ERR_APP_CHANNEL_NIL = INTERNAL_SERVER_ERROR, Internal;
    /// Actors are used but no state store carries `actorStateStore: "true"`.
    ERR_ACTOR_RUNTIME_NOT_FOUND = INTERNAL_SERVER_ERROR, Internal;
    /// An actor request without an actor type or id.
    ERR_ACTOR_INSTANCE_MISSING = BAD_REQUEST, InvalidArgument;
    /// Calling an actor method failed (the app erred or no gateway hosts the type).
    ERR_ACTOR_INVOKE_METHOD = INTERNAL_SERVER_ERROR, Internal;
    /// Reading actor state failed.
    ERR_ACTOR_STATE_GET = INTERNAL_SERVER_ERROR, Internal;
    /// An actor state transaction failed.
    ERR_ACTOR_STATE_TRANSACTION_SAVE = INTERNAL_SERVER_ERROR, Internal;
    /// Creating a reminder failed.
    ERR_ACTOR_REMINDER_CREATE = INTERNAL_SERVER_ERROR, Internal;
    /// Reading a reminder failed.
    ERR_ACTOR_REMINDER_GET = INTERNAL_SERVER_ERROR, Internal;
    /// Deleting a reminder failed.
    ERR_ACTOR_REMINDER_DELETE = INTERNAL_SERVER_ERROR, Internal;
    /// No such reminder.
    ERR_ACTOR_REMINDER_NOT_FOUND = NOT_FOUND, NotFound;
    /// Creating a timer failed.
    ERR_ACTOR_TIMER_CREATE = INTERNAL_SERVER_ERROR, Internal;
    /// Deleting a timer failed.
    ERR_ACTOR_TIMER_DELETE = INTERNAL_SERVER_ERROR, Internal;
    /// No gateway hosting the actor type can be found.
    ERR_ACTOR_NO_PLACEMENT = BAD_REQUEST, FailedPrecondition;
    /// The actor runtime is shutting down.
    ERR_ACTOR_RUNTIME_CLOSED = SERVICE_UNAVAILABLE, Unavailable;
    /// Too many calls are queued for one actor, or reentrancy went too deep.
    ERR_ACTOR_TOO_MANY_CALLS = TOO_MANY_REQUESTS, ResourceExhausted;
    /// Workflows cannot run here (no actor state store).
    ERR_WORKFLOW_ENGINE = INTERNAL_SERVER_ERROR, FailedPrecondition;
    /// No workflow component named in the request.
    ERR_WORKFLOW_COMPONENT_MISSING = BAD_REQUEST, InvalidArgument;
    /// A workflow component other than `dapr`.
    ERR_WORKFLOW_COMPONENT_NOT_FOUND = BAD_REQUEST, InvalidArgument;
    /// No workflow name to start.
    ERR_WORKFLOW_NAME_MISSING = BAD_REQUEST, InvalidArgument;
    /// No event name to raise.
    ERR_WORKFLOW_EVENT_NAME_MISSING = BAD_REQUEST, InvalidArgument;
    /// No instance id where one is required.
    ERR_INSTANCE_ID_PROVIDED_MISSING = BAD_REQUEST, InvalidArgument;
    /// An instance id longer than 64 characters.
    ERR_INSTANCE_ID_TOO_LONG = BAD_REQUEST, InvalidArgument;
    /// An instance id with other characters than letters, digits, `-`, `_`.
    ERR_INSTANCE_ID_INVALID = BAD_REQUEST, InvalidArgument;
    /// No such workflow instance.
    ERR_INSTANCE_ID_NOT_FOUND = NOT_FOUND, NotFound;
    /// Starting a workflow failed.
    ERR_START_WORKFLOW = INTERNAL_SERVER_ERROR, Internal;
    /// Reading a workflow failed.
    ERR_GET_WORKFLOW = INTERNAL_SERVER_ERROR, Internal;
    /// Raising an event failed.
    ERR_RAISE_EVENT_WORKFLOW = INTERNAL_SERVER_ERROR, Internal;
    /// Terminating failed.
    ERR_TERMINATE_WORKFLOW = INTERNAL_SERVER_ERROR, Internal;
    /// Pausing failed.
    ERR_PAUSE_WORKFLOW = INTERNAL_SERVER_ERROR, Internal;
    /// Resuming failed.
    ERR_RESUME_WORKFLOW = INTERNAL_SERVER_ERROR, Internal;
    /// Purging failed (or the instance is still running).
    ERR_PURGE_WORKFLOW = INTERNAL_SERVER_ERROR, Internal;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_named_like_dapr() {
        let mut seen = std::collections::HashSet::new();
        for entry in ALL {
            assert!(entry.code.starts_with("ERR_"), "{}", entry.code);
            assert!(seen.insert(entry.code), "duplicate {}", entry.code);
        }
    }

    #[test]
    fn daprd_quirks() {
        assert_eq!(ERR_STATE_STORE_NOT_FOUND.http, StatusCode::BAD_REQUEST);
        assert_eq!(ERR_SECRET_STORE_NOT_FOUND.http, StatusCode::UNAUTHORIZED);
        assert_eq!(ERR_API_UNIMPLEMENTED.http, StatusCode::NOT_IMPLEMENTED);
    }
}
