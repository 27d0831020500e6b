//! A circuit breaker with Dapr's (gobreaker's) semantics, and the tower
//! layer that puts it in front of a service.
//!
//! Closed: every call goes through and is counted; when a failure makes
//! the trip condition true it opens. Open: calls fail at once until
//! `timeout` has passed, then it is half-open. Half-open: `maxRequests`
//! trial calls go through (more fail at once); that many successes close
//! it, one failure opens it again. Counts start afresh on every change of
//! state and, while closed, every `interval` (when not 0). Results of calls
//! begun before a change of state are ignored.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service, ServiceExt};

use super::layers::{Attempt, ResiliencyError};
use super::policy::{CircuitBreakerPolicy, Counts};

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail at once.
    Open,
    /// A few trial calls go through.
    HalfOpen,
}

/// Why a call was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The breaker is open.
    Open,
    /// Half-open, and its trial calls are all taken.
    TooManyRequests,
}

/// Permission for one call, to hand back with its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    generation: u64,
    counts: Counts,
    /// Closed: when counts are next cleared; open: when it goes half-open.
    expiry: Option<Instant>,
}

/// One circuit breaker (one per target, shared by all its calls).
#[derive(Debug)]
pub struct CircuitBreaker {
    policy: CircuitBreakerPolicy,
    target: String,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// A closed breaker for `target` (named in log lines and errors).
    pub fn new(policy: CircuitBreakerPolicy, target: impl Into<String>) -> Self {
        let breaker = Self {
            policy,
            target: target.into(),
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                generation: 0,
                counts: Counts::default(),
                expiry: None,
            }),
        };
        {
            let mut inner = breaker.lock();
            breaker.enter(&mut inner, BreakerState::Closed, Instant::now());
        }
        breaker
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.policy.name
    }

    /// The target it guards.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Its state now.
    pub fn state(&self) -> BreakerState {
        self.state_at(Instant::now())
    }

    /// Its state at `now`.
    pub fn state_at(&self, now: Instant) -> BreakerState {
        let mut inner = self.lock();
        self.refresh(&mut inner, now);
        inner.state
    }

    /// Ask to make a call at `now`.
    ///
    /// # Errors
    /// [`Rejection`] while open, or half-open with every trial call taken.
    pub fn allow_at(&self, now: Instant) -> Result<Ticket, Rejection> {
        let mut inner = self.lock();
        self.refresh(&mut inner, now);
        match inner.state {
            BreakerState::Open => return Err(Rejection::Open),
            BreakerState::HalfOpen
                if inner.counts.requests >= u64::from(self.policy.max_requests) =>
            {
                return Err(Rejection::TooManyRequests);
            }
            BreakerState::HalfOpen | BreakerState::Closed => {}
        }
        inner.counts.requests += 1;
        Ok(Ticket(inner.generation))
    }

    /// Report how the call of `ticket` went, at `now`.
    pub fn record_at(&self, ticket: Ticket, success: bool, now: Instant) {
        let mut inner = self.lock();
        self.refresh(&mut inner, now);
        if ticket.0 != inner.generation {
            return;
        }
        let counts = &mut inner.counts;
        if success {
            counts.total_successes += 1;
            counts.consecutive_successes += 1;
            counts.consecutive_failures = 0;
            if inner.state == BreakerState::HalfOpen
                && inner.counts.consecutive_successes >= u64::from(self.policy.max_requests)
            {
                self.enter(&mut inner, BreakerState::Closed, now);
            }
        } else {
            counts.total_failures += 1;
            counts.consecutive_failures += 1;
            counts.consecutive_successes = 0;
            let trips = match inner.state {
                BreakerState::Closed => self.policy.trip.holds(&inner.counts),
                BreakerState::HalfOpen => true,
                BreakerState::Open => false,
            };
            if trips {
                self.enter(&mut inner, BreakerState::Open, now);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state is a few counters, consistent after every statement; a
        // panic elsewhere while holding the lock leaves nothing half-done.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn refresh(&self, inner: &mut Inner, now: Instant) {
        match (inner.state, inner.expiry) {
            (BreakerState::Closed, Some(at)) if at <= now => {
                self.enter(inner, BreakerState::Closed, now);
            }
            (BreakerState::Open, Some(at)) if at <= now => {
                self.enter(inner, BreakerState::HalfOpen, now);
            }
            _ => {}
        }
    }

    fn enter(&self, inner: &mut Inner, state: BreakerState, now: Instant) {
        if inner.state != state {
            tracing::info!(
                circuit_breaker = %self.policy.name,
                target = %self.target,
                from = ?inner.state,
                to = ?state,
                "circuit breaker changed state"
            );
        }
        inner.state = state;
        inner.generation += 1;
        inner.counts = Counts::default();
        inner.expiry = match state {
            BreakerState::Closed if !self.policy.interval.is_zero() => {
                now.checked_add(self.policy.interval)
            }
            BreakerState::Open => now.checked_add(self.policy.timeout),
            BreakerState::Closed | BreakerState::HalfOpen => None,
        };
    }
}

// === impl BreakerLayer ===

/// Puts an optional [`CircuitBreaker`] in front of a service.
#[derive(Debug, Clone)]
pub struct BreakerLayer(Option<Arc<CircuitBreaker>>);

impl BreakerLayer {
    /// With `breaker`, or a pass-through layer without one.
    pub fn new(breaker: Option<Arc<CircuitBreaker>>) -> Self {
        Self(breaker)
    }
}

impl<S> Layer<S> for BreakerLayer {
    type Service = Breaker<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Breaker {
            breaker: self.0.clone(),
            inner,
        }
    }
}

/// The service [`BreakerLayer`] builds. A call fails (for the breaker) when
/// the inner service errs or answers with an error status ([`Attempt`]).
#[derive(Debug, Clone)]
pub struct Breaker<S> {
    breaker: Option<Arc<CircuitBreaker>>,
    inner: S,
}

impl<S, Req, R, E> Service<Req> for Breaker<S>
where
    S: Service<Req, Response = R, Error = ResiliencyError<E>> + Clone + Send + 'static,
    S::Future: Send,
    Req: Send + 'static,
    R: Attempt + Send + 'static,
    E: Send + 'static,
{
    type Response = R;
    type Error = ResiliencyError<E>;
    type Future = Pin<Box<dyn Future<Output = Result<R, ResiliencyError<E>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness of the inner service is awaited per call (`oneshot`),
        // after the breaker has let the call through.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let inner = self.inner.clone();
        let Some(breaker) = self.breaker.clone() else {
            return Box::pin(inner.oneshot(request));
        };
        Box::pin(async move {
            let ticket =
                breaker
                    .allow_at(Instant::now())
                    .map_err(|why| ResiliencyError::BreakerOpen {
                        breaker: breaker.name().to_owned(),
                        target: breaker.target().to_owned(),
                        half_open: why == Rejection::TooManyRequests,
                    })?;
            let mut pending = Pending {
                breaker,
                ticket: Some(ticket),
            };
            let result = inner.oneshot(request).await;
            let success = match &result {
                Ok(reply) => reply.failed_status().is_none(),
                Err(_) => false,
            };
            pending.finish(success);
            result
        })
    }
}

/// A call let through and not reported yet. Dropped unreported (the caller
/// went away mid-call), it counts as a failure, as a cancelled call does
/// under Dapr; otherwise a half-open breaker would keep its trial slot
/// taken for good.
struct Pending {
    breaker: Arc<CircuitBreaker>,
    ticket: Option<Ticket>,
}

impl Pending {
    fn finish(&mut self, success: bool) {
        if let Some(ticket) = self.ticket.take() {
            self.breaker.record_at(ticket, success, Instant::now());
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.finish(false);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::resiliency::policy::Trip;

    fn breaker(trip: &str, max_requests: u32, interval: Duration) -> CircuitBreaker {
        CircuitBreaker::new(
            CircuitBreakerPolicy {
                name: "cb".into(),
                max_requests,
                interval,
                timeout: Duration::from_secs(10),
                trip: Trip::parse(trip).unwrap(),
            },
            "app-b",
        )
    }

    fn fail(b: &CircuitBreaker, now: Instant) {
        let t = b.allow_at(now).unwrap();
        b.record_at(t, false, now);
    }

    #[test]
    fn opens_fails_fast_half_opens_and_closes() {
        let b = breaker("consecutiveFailures >= 3", 2, Duration::ZERO);
        let t0 = Instant::now();
        fail(&b, t0);
        fail(&b, t0);
        // A success resets the consecutive count.
        let t = b.allow_at(t0).unwrap();
        b.record_at(t, true, t0);
        fail(&b, t0);
        fail(&b, t0);
        assert_eq!(b.state_at(t0), BreakerState::Closed);
        fail(&b, t0);
        assert_eq!(b.state_at(t0), BreakerState::Open);
        assert_eq!(b.allow_at(t0), Err(Rejection::Open));
        let later = t0 + Duration::from_secs(9);
        assert_eq!(b.allow_at(later), Err(Rejection::Open));

        // After `timeout`: half-open with two trial calls, a third waits.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.state_at(t1), BreakerState::HalfOpen);
        let (a, c) = (b.allow_at(t1).unwrap(), b.allow_at(t1).unwrap());
        assert_eq!(b.allow_at(t1), Err(Rejection::TooManyRequests));
        b.record_at(a, true, t1);
        assert_eq!(b.state_at(t1), BreakerState::HalfOpen);
        b.record_at(c, true, t1);
        assert_eq!(b.state_at(t1), BreakerState::Closed);
        assert!(b.allow_at(t1).is_ok());
    }

    #[test]
    fn a_failed_trial_opens_again_and_stale_results_are_ignored() {
        let b = breaker("consecutiveFailures > 1", 1, Duration::ZERO);
        let t0 = Instant::now();
        let stale = b.allow_at(t0).unwrap();
        fail(&b, t0);
        fail(&b, t0);
        assert_eq!(b.state_at(t0), BreakerState::Open);
        let t1 = t0 + Duration::from_secs(10);
        let trial = b.allow_at(t1).unwrap();
        // A call begun while closed reports now: ignored.
        b.record_at(stale, true, t1);
        assert_eq!(b.state_at(t1), BreakerState::HalfOpen);
        b.record_at(trial, false, t1);
        assert_eq!(b.state_at(t1), BreakerState::Open);
        assert_eq!(
            b.allow_at(t1 + Duration::from_secs(9)),
            Err(Rejection::Open)
        );
        assert_eq!(
            b.state_at(t1 + Duration::from_secs(10)),
            BreakerState::HalfOpen
        );
    }

    #[tokio::test]
    async fn an_abandoned_trial_call_counts_as_a_failure() {
        let b = Arc::new(breaker("consecutiveFailures >= 1", 1, Duration::ZERO));
        let t0 = Instant::now();
        fail(&b, t0);
        // Make it half-open now rather than in 10 s.
        {
            let mut inner = b.lock();
            inner.expiry = Some(t0);
        }
        let mut service =
            BreakerLayer::new(Some(Arc::clone(&b))).layer(tower::service_fn(|()| async {
                std::future::pending::<()>().await;
                Ok::<_, ResiliencyError<()>>(Ok200)
            }));
        let call = service.call(());
        // Let the trial call start, then drop it.
        let _ = tokio::time::timeout(Duration::from_millis(20), call).await;
        assert_eq!(b.state(), BreakerState::Open);
    }

    struct Ok200;

    impl Attempt for Ok200 {
        fn failed_status(&self) -> Option<u16> {
            None
        }
    }

    #[test]
    fn interval_clears_counts_while_closed() {
        let b = breaker("totalFailures >= 2", 1, Duration::from_secs(1));
        let t0 = Instant::now();
        fail(&b, t0);
        fail(&b, t0 + Duration::from_millis(1500));
        assert_eq!(
            b.state_at(t0 + Duration::from_millis(1500)),
            BreakerState::Closed
        );
        fail(&b, t0 + Duration::from_millis(1600));
        assert_eq!(
            b.state_at(t0 + Duration::from_millis(1600)),
            BreakerState::Open
        );
    }
}
