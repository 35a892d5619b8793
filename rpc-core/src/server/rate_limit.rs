//! [`RateLimiter`]: at most a few log lines of one kind per second for the
//! whole process, so that a flood of bad clients cannot flood the log.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Lines of one kind logged per window; the rest are counted.
const PER_WINDOW: u32 = 5;
const WINDOW: Duration = Duration::from_secs(1);

/// Protocol errors (bad frame headers) that close a connection.
pub(super) static PROTOCOL_ERRORS: RateLimiter = RateLimiter::new(PER_WINDOW, WINDOW);
/// Failed accepts that are retried (no descriptors left, say).
pub(super) static ACCEPT_ERRORS: RateLimiter = RateLimiter::new(PER_WINDOW, WINDOW);

/// Allows `per_window` events per `window`; counts those it refuses and
/// hands the count to the next one it allows, which reports it. The clock is
/// the caller's (`Instant::now()` on the error path only), so tests drive it.
#[derive(Debug)]
pub(super) struct RateLimiter {
    per_window: u32,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// When the current window opened; `None` before the first event.
    opened: Option<Instant>,
    allowed: u32,
    suppressed: u64,
}

impl RateLimiter {
    pub(super) const fn new(per_window: u32, window: Duration) -> Self {
        RateLimiter {
            per_window,
            window,
            state: Mutex::new(State {
                opened: None,
                allowed: 0,
                suppressed: 0,
            }),
        }
    }

    /// `None`: do not log this one. `Some(n)`: log it, after a line saying
    /// that `n` (when not 0) were suppressed since the last one logged.
    pub(super) fn check(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let expired = state
            .opened
            .is_none_or(|opened| now.saturating_duration_since(opened) >= self.window);
        if expired {
            state.opened = Some(now);
            state.allowed = 0;
        }
        if state.allowed < self.per_window {
            state.allowed += 1;
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed += 1;
            None
        }
    }
}

/// Whether to log one more event of `limiter`'s kind at its level (WARN
/// or ERROR); when it says yes after refusing some, it first logs a WARN line
/// with their count. A refused event may still be logged at DEBUG: whoever
/// asks for debug logs asks for a line per connection anyway.
pub(super) fn allow(limiter: &RateLimiter, what: &str) -> bool {
    match limiter.check(Instant::now()) {
        Some(0) => true,
        Some(suppressed) => {
            tracing::warn!(
                suppressed,
                "{suppressed} more {what} suppressed (at most {PER_WINDOW} a second are logged)"
            );
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_cut_and_the_next_window_reports_the_count() {
        let limiter = RateLimiter::new(3, Duration::from_secs(1));
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let burst: Vec<_> = (0..10).map(|i| limiter.check(at(i))).collect();
        assert_eq!(
            burst,
            [
                Some(0),
                Some(0),
                Some(0),
                None,
                None,
                None,
                None,
                None,
                None,
                None
            ]
        );
        // Still the same window.
        assert_eq!(limiter.check(at(999)), None);
        // A new window: the first line says how many were dropped.
        assert_eq!(limiter.check(at(1000)), Some(8));
        assert_eq!(limiter.check(at(1001)), Some(0));
        assert_eq!(limiter.check(at(1002)), Some(0));
        assert_eq!(limiter.check(at(1003)), None);
        // A quiet spell loses nothing: the count waits for the next event.
        assert_eq!(limiter.check(at(60_000)), Some(1));
    }

    #[test]
    fn a_clock_going_backwards_does_not_open_windows() {
        let limiter = RateLimiter::new(1, Duration::from_secs(1));
        let t0 = Instant::now() + Duration::from_secs(10);
        assert_eq!(limiter.check(t0), Some(0));
        assert_eq!(limiter.check(t0 - Duration::from_secs(5)), None);
        assert_eq!(limiter.check(t0 + Duration::from_secs(1)), Some(1));
    }
}
