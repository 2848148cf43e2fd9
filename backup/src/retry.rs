//! A step retried a few times with a short, doubling pause: storing a part can fail for a
//! moment (a network file system, an object store's 503) without the whole backup having to
//! start over. Blocking (`std::thread::sleep`), like the rest of the crate.

use std::num::NonZeroU32;
use std::time::Duration;

/// How often and with what pauses a step is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    attempts: NonZeroU32,
    first_pause: Duration,
}

impl Retry {
    /// 3 attempts, pausing 200 ms and then 400 ms.
    pub const DEFAULT: Retry = Retry {
        attempts: NonZeroU32::new(3).expect("3 is not 0"),
        first_pause: Duration::from_millis(200),
    };

    /// `attempts` tries in all; the pause after the first failure is `first_pause` and
    /// doubles after each further one.
    pub fn new(attempts: NonZeroU32, first_pause: Duration) -> Retry {
        Retry {
            attempts,
            first_pause,
        }
    }

    pub fn attempts(&self) -> u32 {
        self.attempts.get()
    }

    /// The pause after failed attempt `attempt` (1-based).
    fn pause_after(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.first_pause.saturating_mul(factor)
    }
}

impl Default for Retry {
    fn default() -> Retry {
        Retry::DEFAULT
    }
}

/// Runs `step(attempt)` (attempt counted from 1) until it succeeds or `policy.attempts()`
/// tries have failed; then the last error.
pub fn retry<T, E>(policy: Retry, mut step: impl FnMut(u32) -> Result<T, E>) -> Result<T, E> {
    let mut attempt = 1;
    loop {
        match step(attempt) {
            Ok(value) => return Ok(value),
            Err(err) if attempt >= policy.attempts() => return Err(err),
            Err(_) => {
                std::thread::sleep(policy.pause_after(attempt));
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(attempts: u32) -> Retry {
        Retry::new(NonZeroU32::new(attempts).unwrap(), Duration::ZERO)
    }

    #[test]
    fn succeeds_on_a_later_attempt() {
        let mut seen = Vec::new();
        let result = retry(quick(3), |attempt| {
            seen.push(attempt);
            if attempt < 3 {
                Err(attempt)
            } else {
                Ok("stored")
            }
        });
        assert_eq!(result, Ok("stored"));
        assert_eq!(seen, [1, 2, 3]);
    }

    #[test]
    fn gives_up_with_the_last_error() {
        let mut calls = 0;
        let result: Result<(), u32> = retry(quick(3), |attempt| {
            calls += 1;
            Err(attempt)
        });
        assert_eq!(result, Err(3));
        assert_eq!(calls, 3);
    }

    #[test]
    fn pauses_double() {
        let policy = Retry::DEFAULT;
        assert_eq!(policy.attempts(), 3);
        assert_eq!(policy.pause_after(1), Duration::from_millis(200));
        assert_eq!(policy.pause_after(2), Duration::from_millis(400));
        assert_eq!(
            Retry::new(NonZeroU32::MAX, Duration::from_secs(1)).pause_after(40),
            Duration::from_secs(u64::from(u32::MAX))
        );
    }
}
