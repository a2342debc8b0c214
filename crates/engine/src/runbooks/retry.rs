//! Per-action retry: the policy a runbook declares, the jittered exponential backoff it
//! implies, and the loop that runs attempts under it. The delay arithmetic is pure; the loop
//! only sleeps on tokio's clock, so tests pause time and advance it.
//!
//! This module never decides whether an error is worth retrying: the error says so
//! ([`ActionError::retryable`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::actions::ActionError;

pub const MAX_ATTEMPTS: u32 = 20;
/// The longest a `Retry-After` answer is obeyed for; beyond it the action waits this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A validated `retry` block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub factor: f64,
}

impl Default for RetryPolicy {
    /// No `retry` block: one attempt.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            factor: 2.0,
        }
    }
}

/// The wait before attempt `attempt + 1`, after `attempt` (1-based) failed. `jitter` in
/// `[0, 1)` spreads the wait over the upper half of the exponential step ("equal jitter"), so
/// retries of many runs do not arrive together yet never come sooner than half the step. A
/// `Retry-After` from the target is a floor.
pub fn backoff(
    policy: &RetryPolicy,
    attempt: u32,
    jitter: f64,
    retry_after: Option<Duration>,
) -> Duration {
    let exponent = attempt.saturating_sub(1).min(64) as i32;
    let step = policy.initial_backoff.as_secs_f64() * policy.factor.powi(exponent);
    let step = step.min(policy.max_backoff.as_secs_f64());
    let delay = Duration::from_secs_f64(step / 2.0 + step / 2.0 * jitter.clamp(0.0, 1.0));
    match retry_after {
        Some(after) => delay.max(after.min(MAX_RETRY_AFTER)),
        None => delay,
    }
}

/// One attempt's outcome, for the record.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub number: u32,
    pub error: Option<String>,
}

/// Runs `attempt` until it succeeds, fails for good, or `policy.max_attempts` is spent,
/// sleeping the backoff between attempts. `on_attempt` sees each attempt as it ends (to record
/// it) and may ask for time before the next one (to renew a lease).
pub async fn run_with_retry<T, F, Fut, R, RFut>(
    policy: &RetryPolicy,
    mut attempt: F,
    mut on_attempt: R,
) -> Result<T, ActionError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, ActionError>>,
    R: FnMut(Attempt, Option<Duration>) -> RFut,
    RFut: Future<Output = ()>,
{
    let mut number = 1;
    loop {
        let result = attempt(number).await;
        let error = match result {
            Ok(value) => {
                on_attempt(
                    Attempt {
                        number,
                        error: None,
                    },
                    None,
                )
                .await;
                return Ok(value);
            }
            Err(error) => error,
        };
        let last = number >= policy.max_attempts || !error.retryable;
        let delay = (!last).then(|| backoff(policy, number, rand::random(), error.retry_after));
        let record = Attempt {
            number,
            error: Some(error.message.clone()),
        };
        on_attempt(record, delay).await;
        let Some(delay) = delay else {
            return Err(error);
        };
        metrics::counter!("pmap_runbook_action_retries_total").increment(1);
        tokio::time::sleep(delay).await;
        number += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
            factor: 2.0,
        }
    }

    fn check(attempt: u32, jitter: f64, retry_after: Option<u64>, expected_ms: u64) {
        let got = backoff(
            &policy(5),
            attempt,
            jitter,
            retry_after.map(Duration::from_secs),
        );
        assert_eq!(
            got,
            Duration::from_millis(expected_ms),
            "attempt {attempt} jitter {jitter}"
        );
    }

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        check(1, 0.0, None, 1_000);
        check(1, 0.5, None, 1_500);
        check(2, 0.0, None, 2_000);
        check(3, 0.5, None, 6_000);
        check(6, 0.0, None, 30_000);
        check(6, 1.0, None, 60_000);
        check(40, 1.0, None, 60_000);
        check(1, 0.0, Some(10), 10_000);
        check(4, 1.0, Some(1), 16_000);
        check(1, 0.0, Some(999_999), 3_600_000);
    }

    fn failing(retryable: bool) -> ActionError {
        ActionError {
            message: "boom".into(),
            retryable,
            retry_after: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_spent_with_backoff_between_attempts() {
        let start = tokio::time::Instant::now();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let result: Result<(), _> = run_with_retry(
            &policy(4),
            |_| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(start.elapsed());
                    Err(failing(true))
                }
            },
            |_, _| async {},
        )
        .await;
        assert!(result.is_err());
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 4);
        // Equal jitter: each gap lies within [step/2, step] of 2s, 4s, 8s.
        for (i, step) in [2.0, 4.0, 8.0].iter().enumerate() {
            let gap = (seen[i + 1] - seen[i]).as_secs_f64();
            assert!(gap >= step / 2.0 && gap <= *step, "gap {i}: {gap}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_error_is_not_retried_and_success_stops() {
        let calls = Arc::new(Mutex::new(0));
        let counter = calls.clone();
        let result: Result<(), _> = run_with_retry(
            &policy(10),
            move |_| {
                let calls = counter.clone();
                async move {
                    *calls.lock().unwrap() += 1;
                    Err(failing(false))
                }
            },
            |_, _| async {},
        )
        .await;
        assert!(result.is_err());
        assert_eq!(*calls.lock().unwrap(), 1);

        let attempts = Arc::new(Mutex::new(Vec::new()));
        let log = attempts.clone();
        let result = run_with_retry(
            &policy(10),
            |n| async move { if n < 3 { Err(failing(true)) } else { Ok(n) } },
            move |a, _| {
                log.lock().unwrap().push(a);
                async {}
            },
        )
        .await;
        assert_eq!(result.unwrap(), 3);
        let attempts = attempts.lock().unwrap();
        assert_eq!(attempts.len(), 3);
        assert!(attempts[2].error.is_none());
    }
}
