//! A component's `outbound` policies around one gRPC call to it.
//!
//! Errors that say the request itself is wrong (an ETag mismatch, a bad
//! argument, a missing key, ...) are answers, not failures: they are
//! returned at once, neither retried nor counted by the breaker. Any other
//! status (unavailable, internal, deadline, ...) is a failure.

use std::future::Future;
use std::sync::Arc;

use tonic::Code;
use tower::ServiceExt;

use super::layers::{self, Attempt, ResiliencyError};
use super::policy::TargetPolicy;

/// One attempt's outcome: the reply, or a status the caller caused.
enum Answer<T> {
    Reply(T),
    Refused(tonic::Status),
}

impl<T> Attempt for Answer<T> {
    fn failed_status(&self) -> Option<u16> {
        None
    }
}

/// Whether `code` blames the request rather than the component.
fn is_answer(code: Code) -> bool {
    match code {
        Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::Unauthenticated => true,
        Code::Ok
        | Code::Cancelled
        | Code::Unknown
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Internal
        | Code::Unavailable
        | Code::DataLoss => false,
    }
}

/// Send `request` with `op` (one call to a component) under `policy`, or
/// once, without copying the request, when there is none.
///
/// # Errors
/// The component's status; `DEADLINE_EXCEEDED` when the timeout fired and
/// `UNAVAILABLE` ("circuit breaker is open ...") when the breaker refused.
pub async fn call<Req, T, F, Fut>(
    policy: Option<&TargetPolicy>,
    request: Req,
    op: F,
) -> Result<T, tonic::Status>
where
    Req: Clone + Send + 'static,
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, tonic::Status>> + Send + 'static,
    T: Send + 'static,
{
    let Some(policy) = policy else {
        return op(request).await;
    };
    let op = Arc::new(op);
    let attempt = tower::service_fn(move |request: Req| {
        let op = Arc::clone(&op);
        async move {
            match op(request).await {
                Ok(reply) => Ok(Answer::Reply(reply)),
                Err(status) if is_answer(status.code()) => Ok(Answer::Refused(status)),
                Err(status) => Err(ResiliencyError::Inner(status)),
            }
        }
    });
    // Boxed: the policy's layers hold several of `op`'s futures, which
    // would otherwise make every call's future (and each move of it, layer
    // by layer up to the API handler) that much larger, policy or not.
    let answer = Box::pin(layers::stack(policy, attempt).oneshot(request)).await;
    match answer {
        Ok(Answer::Reply(reply)) => Ok(reply),
        Ok(Answer::Refused(status)) | Err(ResiliencyError::Inner(status)) => Err(status),
        Err(err @ ResiliencyError::Timeout(_)) => {
            Err(tonic::Status::deadline_exceeded(err.to_string()))
        }
        Err(err @ ResiliencyError::BreakerOpen { .. }) => {
            Err(tonic::Status::unavailable(err.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::resiliency::policy::{CodeRanges, RetryPolicy};

    fn policy() -> TargetPolicy {
        TargetPolicy {
            timeout: Some(Duration::from_millis(50)),
            retry: Some(RetryPolicy {
                exponential: false,
                duration: Duration::from_millis(1),
                max_interval: Duration::from_secs(1),
                max_retries: Some(3),
                http_status_codes: CodeRanges::default(),
                grpc_status_codes: CodeRanges::default(),
            }),
            circuit_breaker: None,
        }
    }

    #[tokio::test]
    async fn failures_are_retried_and_answers_are_not() {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = Arc::clone(&calls);
        let reply = call(Some(&policy()), (), move |()| {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Err(tonic::Status::unavailable("down")),
                    1 => Err(tonic::Status::internal("oops")),
                    _ => Ok(n),
                }
            }
        })
        .await;
        assert_eq!(reply.unwrap(), 2);

        let calls2 = Arc::new(AtomicU32::new(0));
        let seen = Arc::clone(&calls2);
        let err = call(Some(&policy()), (), move |()| {
            seen.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(tonic::Status::failed_precondition("etag mismatch")) }
        })
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert_eq!(calls2.load(Ordering::SeqCst), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_slow_component_times_out() {
        let err = call(Some(&policy()), (), |()| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded);
        assert!(err.message().contains("timeout"), "{err:?}");
    }
}
