//! # timer
//!
//! A small timer library whose procs are ordinary async functions, callable
//! in-process by Rust code and, through `#[remote]`, by name over a CBOR
//! socket from any language (see `contract.md` for the wire rules).
//!
//! The Rust crate is named `my_timer` so that its C library is `libmy_timer`.
//!
//! # Layout
//!
//! - [`Timer`]: the context, a named timer (`"ipc-server"` when served);
//! - the procs [`version`], [`echo`], [`complex`], [`schedule`] and their
//!   request and reply types, in the contract's camelCase;
//! - `serve` (feature `serve` only): the server entry point and the C ABI
//!   function `my_timer_serve(address)`.
//!
//! ```
//! use my_timer::{echo, EchoRequest, Timer};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let timer = Timer::new("local");
//! let reply = echo(&timer, EchoRequest { message: "hi".into(), delay_ms: 0 }).await;
//! assert_eq!((reply.echoed.as_str(), reply.timer_name.as_str()), ("hi", "local"));
//! # }
//! ```

use std::time::Duration;

use rpc_core::remote;
use serde::{Deserialize, Serialize};

#[cfg(feature = "serve")]
mod serve;
#[cfg(feature = "serve")]
pub use serve::{my_timer_serve, serve, SERVER_TIMER_NAME};

/// The version text `version` returns.
pub const VERSION: &str = "nim-timer v0.1.0";

/// The library's context: a named timer. Procs read the name from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    name: String,
}

impl Timer {
    /// A timer called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Timer { name: name.into() }
    }

    /// The timer's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A message to echo after a delay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EchoRequest {
    /// The text echoed back.
    pub message: String,
    /// How long to wait first, in milliseconds; negative waits 0.
    pub delay_ms: i64,
}

/// The reply of [`echo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EchoReply {
    /// The message, unchanged.
    pub echoed: String,
    /// The name of the timer that echoed it.
    pub timer_name: String,
}

/// A batch of messages with optional extras.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComplexRequest {
    /// The messages counted.
    pub messages: Vec<EchoRequest>,
    /// Free tags, not interpreted.
    pub tags: Vec<String>,
    /// An optional note; absent and null are both "no note".
    pub note: Option<String>,
    /// An optional retry count; absent and null print as 0.
    pub retries: Option<i64>,
}

/// The reply of [`complex`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComplexReply {
    /// `received {n} messages, note={note}, retries={retries}`.
    pub summary: String,
    /// The number of messages.
    pub item_count: i64,
    /// Whether a note was given (an empty note counts).
    pub has_note: bool,
}

/// The job to schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    /// The job's name, not empty.
    pub name: String,
    /// Free arguments of the job.
    pub payload: Vec<String>,
    /// Its priority, not interpreted.
    pub priority: i64,
}

/// How a failed job is retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Attempts in all, at least 1.
    pub max_attempts: i64,
    /// Pause between attempts, in milliseconds.
    pub backoff_ms: i64,
    /// Error kinds worth a retry.
    pub retry_on: Vec<String>,
}

/// When a job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleConfig {
    /// First run, in milliseconds since an epoch of the caller's choice.
    pub start_at_ms: i64,
    /// Period in milliseconds; 0 or less runs once.
    pub interval_ms: i64,
    /// Added to the first run; absent and null are 0.
    pub jitter: Option<i64>,
}

/// The reply of [`schedule`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleReply {
    /// `TIMER:NAME`.
    pub job_id: String,
    /// Runs in the first minute: `max(1, 60000 / intervalMs)`, or 1.
    pub will_run_count: i64,
    /// `startAtMs + jitter`.
    pub first_run_at_ms: i64,
    /// The retry backoff, unchanged.
    pub effective_backoff_ms: i64,
}

/// Why [`schedule`] refused a job. The texts are the contract's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The job's name is `""`.
    #[error("job name must not be empty")]
    EmptyJobName,
    /// `retry.maxAttempts` is 0 or negative.
    #[error("retry.maxAttempts must be positive")]
    NonPositiveMaxAttempts,
    /// `startAtMs + jitter` does not fit in 64 bits.
    #[error("schedule.startAtMs + schedule.jitter overflows a 64-bit integer")]
    FirstRunOverflow,
}

/// The library's version text.
#[remote]
pub async fn version() -> String {
    VERSION.to_owned()
}

/// Echoes `req.message` after `req.delay_ms` milliseconds, naming the timer.
#[remote]
pub async fn echo(timer: &Timer, req: EchoRequest) -> EchoReply {
    let delay = u64::try_from(req.delay_ms).unwrap_or(0);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    EchoReply {
        echoed: req.message,
        timer_name: timer.name().to_owned(),
    }
}

/// Summarises a batch of messages and its optional note and retry count.
#[remote]
pub async fn complex(req: ComplexRequest) -> ComplexReply {
    let count = req.messages.len();
    let note = req.note.as_deref().unwrap_or("<none>");
    ComplexReply {
        summary: format!(
            "received {count} messages, note={note}, retries={}",
            req.retries.unwrap_or(0)
        ),
        item_count: i64::try_from(count).unwrap_or(i64::MAX),
        has_note: req.note.is_some(),
    }
}

/// Plans a job: its id, how often it runs in the first minute, and when it
/// first runs. Refuses an empty name, then a non-positive `maxAttempts`.
#[remote]
pub async fn schedule(
    timer: &Timer,
    job: JobSpec,
    retry: RetryPolicy,
    schedule: ScheduleConfig,
) -> Result<ScheduleReply, ScheduleError> {
    if job.name.is_empty() {
        return Err(ScheduleError::EmptyJobName);
    }
    if retry.max_attempts <= 0 {
        return Err(ScheduleError::NonPositiveMaxAttempts);
    }
    let will_run_count = if schedule.interval_ms > 0 {
        (60_000 / schedule.interval_ms).max(1)
    } else {
        1
    };
    let first_run_at_ms = schedule
        .start_at_ms
        .checked_add(schedule.jitter.unwrap_or(0))
        .ok_or(ScheduleError::FirstRunOverflow)?;
    Ok(ScheduleReply {
        job_id: format!("{}:{}", timer.name(), job.name),
        will_run_count,
        first_run_at_ms,
        effective_backoff_ms: retry.backoff_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(f)
    }

    fn job(name: &str) -> JobSpec {
        JobSpec {
            name: name.into(),
            payload: vec![],
            priority: 0,
        }
    }

    fn retry(max_attempts: i64) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            backoff_ms: 250,
            retry_on: vec![],
        }
    }

    fn every(interval_ms: i64, jitter: Option<i64>) -> ScheduleConfig {
        ScheduleConfig {
            start_at_ms: 1000,
            interval_ms,
            jitter,
        }
    }

    #[test]
    fn version_is_the_contracts() {
        assert_eq!(block(version()), "nim-timer v0.1.0");
    }

    #[test]
    fn echo_waits_the_delay_and_names_the_timer() {
        let timer = Timer::new("t1");
        block(async {
            let start = tokio::time::Instant::now();
            let reply = echo(
                &timer,
                EchoRequest {
                    message: "m".into(),
                    delay_ms: 1500,
                },
            )
            .await;
            assert_eq!(start.elapsed(), Duration::from_millis(1500));
            assert_eq!(
                reply,
                EchoReply {
                    echoed: "m".into(),
                    timer_name: "t1".into()
                }
            );
            let start = tokio::time::Instant::now();
            echo(
                &timer,
                EchoRequest {
                    message: "m".into(),
                    delay_ms: -5,
                },
            )
            .await;
            assert_eq!(start.elapsed(), Duration::ZERO);
        });
    }

    #[test]
    fn complex_summarises() {
        let msg = EchoRequest {
            message: "a".into(),
            delay_ms: 0,
        };
        let req = |note: Option<&str>, retries| ComplexRequest {
            messages: vec![msg.clone(), msg.clone()],
            tags: vec!["x".into()],
            note: note.map(str::to_owned),
            retries,
        };
        let r = block(complex(req(None, None)));
        assert_eq!(r.summary, "received 2 messages, note=<none>, retries=0");
        assert_eq!((r.item_count, r.has_note), (2, false));
        let r = block(complex(req(Some(""), Some(-3))));
        assert_eq!(r.summary, "received 2 messages, note=, retries=-3");
        assert!(r.has_note);
    }

    #[test]
    fn schedule_arithmetic() {
        let t = Timer::new("ipc-server");
        let run =
            |interval, jitter| block(schedule(&t, job("j"), retry(1), every(interval, jitter)));
        let r = run(1000, Some(7)).unwrap();
        assert_eq!(r.job_id, "ipc-server:j");
        assert_eq!(
            (r.will_run_count, r.first_run_at_ms, r.effective_backoff_ms),
            (60, 1007, 250)
        );
        assert_eq!(run(7000, None).unwrap().will_run_count, 8);
        assert_eq!(run(60_001, None).unwrap().will_run_count, 1);
        assert_eq!(run(0, None).unwrap().will_run_count, 1);
        assert_eq!(run(-5, None).unwrap().will_run_count, 1);
        assert_eq!(run(1, None).unwrap().will_run_count, 60_000);
    }

    #[test]
    fn schedule_errors_in_the_contract_order() {
        let t = Timer::new("x");
        let err = block(schedule(&t, job(""), retry(0), every(1, None))).unwrap_err();
        assert_eq!(err.to_string(), "job name must not be empty");
        let err = block(schedule(&t, job("j"), retry(0), every(1, None))).unwrap_err();
        assert_eq!(err.to_string(), "retry.maxAttempts must be positive");
        let mut late = every(1, Some(1));
        late.start_at_ms = i64::MAX;
        let err = block(schedule(&t, job("j"), retry(1), late)).unwrap_err();
        assert_eq!(err, ScheduleError::FirstRunOverflow);
    }
}
