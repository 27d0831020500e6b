//! Tower layers for timeouts and retries, and how a target's policies are
//! stacked around a service.
//!
//! The order is Dapr's: retry (outermost) → circuit breaker → timeout →
//! the call. So every attempt has its own timeout, every attempt (timed
//! out or not) is counted by the breaker, and an open breaker ends the
//! retries at once instead of being retried.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::{Layer, Service, ServiceBuilder, ServiceExt};

use super::breaker::{Breaker, BreakerLayer};
use super::policy::{RetryPolicy, TargetPolicy};

/// An answer that can itself be a failure (an error status from the callee).
pub trait Attempt {
    /// The error status when the answer is a failure, `None` when it is a success.
    fn failed_status(&self) -> Option<u16>;
}

/// What the resiliency layers add to a service's own error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResiliencyError<E> {
    /// The service's own error (the callee could not be reached, ...).
    #[error("{0}")]
    Inner(E),
    /// An attempt took longer than the timeout policy allows.
    #[error("timeout: no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The circuit breaker let nothing through.
    #[error("circuit breaker is open (circuit breaker {breaker:?} of {target}{})", if *.half_open { ", half-open with every trial call taken" } else { "" })]
    BreakerOpen {
        /// The breaker policy's name.
        breaker: String,
        /// What it guards.
        target: String,
        /// Half-open rather than open.
        half_open: bool,
    },
}

// === impl TimeoutLayer ===

/// Fails an attempt that takes longer than a duration.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer(Option<Duration>);

impl TimeoutLayer {
    /// With `after`, or a pass-through layer without it.
    pub fn new(after: Option<Duration>) -> Self {
        Self(after)
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            after: self.0,
            inner,
        }
    }
}

/// The service [`TimeoutLayer`] builds; dropping the late call cancels it.
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    after: Option<Duration>,
    inner: S,
}

impl<S, Req, R, E> Service<Req> for Timeout<S>
where
    S: Service<Req, Response = R, Error = ResiliencyError<E>>,
    S::Future: Send + 'static,
    R: Send + 'static,
    E: Send + 'static,
{
    type Response = R;
    type Error = ResiliencyError<E>;
    type Future = Pin<Box<dyn Future<Output = Result<R, ResiliencyError<E>>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let call = self.inner.call(request);
        let Some(after) = self.after else {
            return Box::pin(call);
        };
        Box::pin(async move {
            tokio::time::timeout(after, call)
                .await
                .unwrap_or(Err(ResiliencyError::Timeout(after)))
        })
    }
}

// === impl RetryLayer ===

/// Retries failed attempts per a [`RetryPolicy`].
#[derive(Debug, Clone)]
pub struct RetryLayer(Option<RetryPolicy>);

impl RetryLayer {
    /// With `policy`, or a pass-through layer without one.
    pub fn new(policy: Option<RetryPolicy>) -> Self {
        Self(policy)
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry {
            policy: self.0.clone(),
            inner,
        }
    }
}

/// The service [`RetryLayer`] builds. Errors and timeouts are retried;
/// answers with an error status are retried when the policy's
/// `matching.httpStatusCodes` lists it, and once retries run out the last
/// answer is returned as it is. An open circuit breaker is never retried.
#[derive(Debug, Clone)]
pub struct Retry<S> {
    policy: Option<RetryPolicy>,
    inner: S,
}

impl<S, Req, R, E> Service<Req> for Retry<S>
where
    S: Service<Req, Response = R, Error = ResiliencyError<E>> + Clone + Send + 'static,
    S::Future: Send,
    Req: Clone + Send + 'static,
    R: Attempt + Send + 'static,
    E: Send + 'static,
{
    type Response = R;
    type Error = ResiliencyError<E>;
    type Future = Pin<Box<dyn Future<Output = Result<R, ResiliencyError<E>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each attempt drives a clone of the inner service to readiness.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let inner = self.inner.clone();
        let Some(policy) = self.policy.clone() else {
            return Box::pin(inner.oneshot(request));
        };
        Box::pin(async move {
            let mut retries = 0u32;
            loop {
                let result = inner.clone().oneshot(request.clone()).await;
                let retry = match &result {
                    Ok(reply) => reply
                        .failed_status()
                        .is_some_and(|status| policy.retries_http(status)),
                    Err(ResiliencyError::BreakerOpen { .. }) => false,
                    Err(ResiliencyError::Inner(_) | ResiliencyError::Timeout(_)) => true,
                };
                if !retry || !policy.allows(retries) {
                    return result;
                }
                retries = retries.saturating_add(1);
                let wait = policy.wait(retries);
                tracing::debug!(retry = retries, wait = ?wait, "attempt failed; retrying");
                tokio::time::sleep(wait).await;
            }
        })
    }
}

/// A service wrapped in `policy`: retry → circuit breaker → timeout.
pub fn stack<S, Req, R, E>(policy: &TargetPolicy, inner: S) -> Retry<Breaker<Timeout<S>>>
where
    S: Service<Req, Response = R, Error = ResiliencyError<E>>,
{
    ServiceBuilder::new()
        .layer(RetryLayer::new(policy.retry.clone()))
        .layer(BreakerLayer::new(policy.circuit_breaker.clone()))
        .layer(TimeoutLayer::new(policy.timeout))
        .service(inner)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::resiliency::breaker::CircuitBreaker;
    use crate::resiliency::policy::{CircuitBreakerPolicy, CodeRanges, Trip};

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Status(u16);

    impl Attempt for Status {
        fn failed_status(&self) -> Option<u16> {
            (!(200..400).contains(&self.0)).then_some(self.0)
        }
    }

    /// Answers `answers[n]` on call n (the last one from then on); 0 means "never answers".
    fn app(
        answers: &'static [u16],
        calls: Arc<AtomicU32>,
    ) -> impl Service<(), Response = Status, Error = ResiliencyError<String>, Future: Send>
    + Clone
    + Send
    + 'static {
        tower::service_fn(move |()| {
            let n = calls.fetch_add(1, Ordering::SeqCst) as usize;
            let answer = answers[n.min(answers.len() - 1)];
            async move {
                if answer == 0 {
                    std::future::pending::<()>().await;
                }
                Ok(Status(answer))
            }
        })
    }

    fn retry(max: u32, codes: &str) -> RetryPolicy {
        RetryPolicy {
            exponential: false,
            duration: Duration::from_millis(1),
            max_interval: Duration::from_secs(1),
            max_retries: Some(max),
            http_status_codes: CodeRanges::parse(codes, (100, 599)).unwrap(),
            grpc_status_codes: CodeRanges::default(),
        }
    }

    #[tokio::test]
    async fn retries_until_success_or_exhaustion() {
        let calls = Arc::new(AtomicU32::new(0));
        let policy = TargetPolicy {
            retry: Some(retry(5, "")),
            ..TargetPolicy::default()
        };
        let reply = stack(&policy, app(&[500, 503, 200], calls.clone()))
            .oneshot(())
            .await;
        assert_eq!((reply, calls.load(Ordering::SeqCst)), (Ok(Status(200)), 3));

        let calls = Arc::new(AtomicU32::new(0));
        let reply = stack(&policy, app(&[500], calls.clone())).oneshot(()).await;
        assert_eq!((reply, calls.load(Ordering::SeqCst)), (Ok(Status(500)), 6));
    }

    #[tokio::test]
    async fn matching_limits_which_statuses_are_retried() {
        let calls = Arc::new(AtomicU32::new(0));
        let policy = TargetPolicy {
            retry: Some(retry(5, "502-504")),
            ..TargetPolicy::default()
        };
        let reply = stack(&policy, app(&[503, 500, 200], calls.clone()))
            .oneshot(())
            .await;
        assert_eq!((reply, calls.load(Ordering::SeqCst)), (Ok(Status(500)), 2));
    }

    #[tokio::test]
    async fn timeouts_are_retried_and_an_open_breaker_stops_retrying() {
        let calls = Arc::new(AtomicU32::new(0));
        let breaker = CircuitBreaker::new(
            CircuitBreakerPolicy {
                name: "cb".into(),
                max_requests: 1,
                interval: Duration::ZERO,
                timeout: Duration::from_secs(60),
                trip: Trip::parse("consecutiveFailures >= 2").unwrap(),
            },
            "app-b",
        );
        let policy = TargetPolicy {
            timeout: Some(Duration::from_millis(20)),
            retry: Some(retry(10, "")),
            circuit_breaker: Some(Arc::new(breaker)),
        };
        let result = stack(&policy, app(&[0], calls.clone())).oneshot(()).await;
        // Two timed-out attempts trip the breaker; the third is refused.
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let err = result.unwrap_err();
        assert!(
            matches!(err, ResiliencyError::BreakerOpen { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("circuit breaker is open"), "{err}");
        assert_eq!(
            ResiliencyError::<String>::Timeout(Duration::from_millis(20)).to_string(),
            "timeout: no answer within 20ms"
        );
    }
}
