//! Bounded waits on conditions. A condition is polled at a short interval until it holds or
//! the time limit passes; the timeout error says what was awaited and the last observed value,
//! which is usually enough to see why a test failed.

use std::time::{Duration, Instant};

use crate::error::{LabError, Result};

/// One observation of a condition.
#[derive(Debug)]
pub enum Poll<T> {
    /// The condition holds; the wait returns this value.
    Ready(T),
    /// Not yet; the string is the observed value reported if the wait times out.
    Pending(String),
}

/// Polls `probe` every `interval` until it returns [`Poll::Ready`] or `limit` passes.
/// A probe error is not fatal: it counts as the last observation (a node that is still booting
/// makes `nsenter` fail, for example).
pub fn until<T>(
    what: &str,
    limit: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Result<Poll<T>>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        let last = match probe() {
            Ok(Poll::Ready(v)) => return Ok(v),
            Ok(Poll::Pending(obs)) => obs,
            Err(e) => format!("error: {e}"),
        };
        if start.elapsed() >= limit {
            return Err(LabError::Timeout {
                what: what.to_string(),
                waited: start.elapsed(),
                last,
            });
        }
        std::thread::sleep(interval);
    }
}

/// [`until`] with the default 200 ms poll interval.
pub fn until_default<T>(
    what: &str,
    limit: Duration,
    probe: impl FnMut() -> Result<Poll<T>>,
) -> Result<T> {
    until(what, limit, Duration::from_millis(200), probe)
}

/// Polls a boolean probe whose observed value is a string: ready when `ok(value)` holds.
pub fn until_value(
    what: &str,
    limit: Duration,
    mut get: impl FnMut() -> Result<String>,
    ok: impl Fn(&str) -> bool,
) -> Result<String> {
    until_default(what, limit, || {
        let v = get()?;
        Ok(if ok(&v) {
            Poll::Ready(v)
        } else {
            Poll::Pending(v)
        })
    })
}

/// Lets `d` pass while the caller's other threads (client loops being measured) run: the
/// pacing of a measurement, bounded like every wait here, not a stand-in for a condition.
pub fn pace(d: Duration, what: &str) -> Result<()> {
    let t = Instant::now();
    until(
        &format!("{d:?} of {what}"),
        d + Duration::from_secs(5),
        Duration::from_millis(100),
        || {
            Ok(if t.elapsed() >= d {
                Poll::Ready(())
            } else {
                Poll::Pending("running".into())
            })
        },
    )
}
