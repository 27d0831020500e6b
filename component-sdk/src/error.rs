//! [`ComponentError`]: the one error a component returns, and its exact wire form.
//!
//! daprd reads some errors structurally (`pkg/components/state/pluggable.go`):
//! an ETag error is recognised only when the status carries exactly one
//! `google.rpc.BadRequest` detail with exactly one field violation on `etag`,
//! and a bulk-delete mismatch only with exactly one `google.rpc.ErrorInfo`
//! holding `expected` and `affected`. Anything else reaches the app as a 500.
//! [`From<ComponentError> for tonic::Status`] is the single place that shape is made.

use std::collections::HashMap;
use std::fmt;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// What went wrong, in the terms daprd distinguishes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The ETag given does not match the stored one (or the key is gone).
    /// daprd answers HTTP 409 / gRPC `Aborted`.
    EtagMismatch,
    /// The ETag given is not one this store could have issued.
    /// daprd answers HTTP 400 / gRPC `InvalidArgument`.
    EtagInvalid,
    /// A bulk delete removed a different number of rows than it was asked to.
    BulkDeleteRowMismatch {
        /// Rows the request named.
        expected: u64,
        /// Rows actually removed.
        affected: u64,
    },
    /// A request field is malformed; `field` names it (e.g. `key`, `metadata.ttlInSeconds`).
    InvalidArgument {
        /// The offending field.
        field: String,
    },
    /// The thing asked for does not exist.
    NotFound,
    /// The component does not implement this operation.
    Unimplemented,
    /// The call came before `Init`, or the component is not in a state to serve it.
    FailedPrecondition,
    /// The backend cannot be reached right now; retrying may help.
    Unavailable,
    /// A standardized Dapr ("kit") error: daprd rebuilds it with this HTTP
    /// status and error tag instead of a generic 500.
    Kit {
        /// gRPC code to answer with.
        grpc: Code,
        /// HTTP status daprd should give the app.
        http: u16,
        /// Dapr error tag, e.g. `ERR_STATE_QUERY`.
        tag: String,
        /// `ErrorInfo.reason`, e.g. `DAPR_STATE_QUERY_FAILED`.
        reason: String,
    },
    /// Any other failure of the component or its backend.
    Internal,
}

/// The error every component trait method returns.
///
/// Build one with the constructors ([`ComponentError::etag_mismatch`], ...);
/// the message should tell the caller what to do next.
#[derive(Debug)]
pub struct ComponentError {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

// === impl ComponentError ===

impl ComponentError {
    /// An error of any kind with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The ETag does not match the stored item.
    pub fn etag_mismatch(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::EtagMismatch, message)
    }

    /// The ETag is malformed for this store.
    pub fn etag_invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::EtagInvalid, message)
    }

    /// A bulk delete affected `affected` rows instead of `expected`.
    pub fn bulk_delete_mismatch(expected: u64, affected: u64) -> Self {
        Self::new(
            ErrorKind::BulkDeleteRowMismatch { expected, affected },
            format!("bulk delete expected to remove {expected} rows but removed {affected}"),
        )
    }

    /// A malformed request field, named in `field`.
    pub fn invalid_argument(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("{field}: {}", message.into());
        Self::new(ErrorKind::InvalidArgument { field }, message)
    }

    /// Something that does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// The component does not implement `operation`.
    pub fn unimplemented(operation: &str) -> Self {
        Self::new(
            ErrorKind::Unimplemented,
            format!("this component does not implement {operation}"),
        )
    }

    /// The component is not ready for this call.
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::FailedPrecondition, message)
    }

    /// The backend is unreachable for now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// Any other failure.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// A standardized Dapr error that daprd passes to the app with `http` and `tag`.
    pub fn kit(
        grpc: Code,
        http: u16,
        tag: impl Into<String>,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let kind = ErrorKind::Kit {
            grpc,
            http,
            tag: tag.into(),
            reason: reason.into(),
        };
        Self::new(kind, message)
    }

    /// Attach the underlying cause (kept for logs, not sent on the wire).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of error this is.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ComponentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ComponentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// `ErrorInfo.domain` for the details this SDK attaches.
pub const ERROR_DOMAIN: &str = "outrigger.dev";

impl From<ComponentError> for Status {
    fn from(err: ComponentError) -> Self {
        let message = err.to_string();
        match err.kind {
            ErrorKind::EtagMismatch => Status::with_error_details(
                Code::FailedPrecondition,
                message.clone(),
                ErrorDetails::with_bad_request_violation("etag", message),
            ),
            ErrorKind::EtagInvalid => Status::with_error_details(
                Code::InvalidArgument,
                message.clone(),
                ErrorDetails::with_bad_request_violation("etag", message),
            ),
            ErrorKind::BulkDeleteRowMismatch { expected, affected } => Status::with_error_details(
                Code::Internal,
                message,
                ErrorDetails::with_error_info(
                    "BULK_DELETE_ROW_MISMATCH",
                    ERROR_DOMAIN,
                    HashMap::from([
                        ("expected".to_owned(), expected.to_string()),
                        ("affected".to_owned(), affected.to_string()),
                    ]),
                ),
            ),
            ErrorKind::InvalidArgument { field } => Status::with_error_details(
                Code::InvalidArgument,
                message.clone(),
                ErrorDetails::with_bad_request_violation(field, message),
            ),
            ErrorKind::Kit {
                grpc,
                http,
                tag,
                reason,
            } => Status::with_error_details(
                grpc,
                message,
                ErrorDetails::with_error_info(
                    reason,
                    "dapr.io",
                    HashMap::from([
                        ("kit_error".to_owned(), "true".to_owned()),
                        ("http_code".to_owned(), http.to_string()),
                        ("tag".to_owned(), tag),
                    ]),
                ),
            ),
            ErrorKind::NotFound => Status::not_found(message),
            ErrorKind::Unimplemented => Status::unimplemented(message),
            ErrorKind::FailedPrecondition => Status::failed_precondition(message),
            ErrorKind::Unavailable => Status::unavailable(message),
            ErrorKind::Internal => Status::internal(message),
        }
    }
}

#[cfg(test)]
mod tests;
