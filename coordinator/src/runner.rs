//! One shape for every coordinator loop: wait for the next look (its time, a change worth
//! reacting to, an operator's command, or stop), run one pass, and let the pass say when
//! to look next. A failed pass backs off (doubling, bounded, with jitter) instead of
//! hammering a cloud API or an agent; a change seen during a backoff waits for its end.
//!
//! What a pass decides stays in the loop's own module (a pure planner over observed facts
//! where there is one); this module owns only the timing.

use std::pin::Pin;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::{Stream, StreamExt};

/// The moment a pass runs at, given to a loop's planner rather than read by it: the monotonic
/// clock for the waits kept in memory, the wall clock (ms since the epoch) for the times
/// persisted in a record. Tests move it forward instead of sleeping.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub unix_ms: u64,
}

impl Now {
    /// The clocks as they read now (the loop's one call per pass).
    pub fn current() -> Now {
        Now {
            at: Instant::now(),
            unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }

    /// The same moment `by` later on both clocks.
    pub fn later(self, by: Duration) -> Now {
        Now {
            at: self.at + by,
            unix_ms: self.unix_ms + by.as_millis() as u64,
        }
    }
}

/// What one pass says about the next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Look again after this long (the loop's interval, or a longer pause when steady).
    After(Duration),
    /// The pass failed: look again after the next backoff step. `transient` failures
    /// (a timeout, a 503) start at [`Backoff::first`] and double up to [`Backoff::max`];
    /// the others (a refused credential, a bad request) wait [`Backoff::terminal`].
    Failed { message: String, transient: bool },
}

/// How a loop backs off after failed passes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub terminal: Duration,
}

impl Backoff {
    /// For loops whose passes never return [`Next::Failed`] (the observer, recovery, the
    /// volume and autoscaling: a failed call is a status line there, and the next pass
    /// retries at the loop's own pace).
    pub const NEVER_USED: Backoff = Backoff {
        first: Duration::from_secs(1),
        max: Duration::from_secs(1),
        terminal: Duration::from_secs(1),
    };

    /// The wait after a failure, given the last one (`None`: the first failure in a row),
    /// before jitter.
    pub fn next(&self, last: Option<Duration>, transient: bool) -> Duration {
        if !transient {
            return self.terminal;
        }
        last.map_or(self.first, |last| (last * 2).min(self.max))
            .max(self.first)
    }
}

/// Up to a tenth of `wait` added, from the clock's nanoseconds: loops that failed together
/// (an API that went down for all of them) do not retry in lockstep.
fn jitter(wait: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let spread = wait.as_millis() as u64 / 10;
    if spread == 0 {
        return wait;
    }
    wait + Duration::from_millis(u64::from(nanos) % (spread + 1))
}

/// A loop's passes and the operator commands it serves between them.
#[async_trait::async_trait]
pub trait Reconciler: Send {
    type Command: Send;
    /// One look at the present: observe, plan, act, publish the status.
    async fn pass(&mut self) -> Next;
    /// Serve an operator command now; a pass follows at once.
    async fn command(&mut self, _command: Self::Command) {}
}

/// Changes that wake a loop before its next look (gossip changes, view events).
pub type Wakes = Pin<Box<dyn Stream<Item = ()> + Send>>;

/// What a loop waits on besides its own timer.
pub struct Inputs<C> {
    pub wakes: Option<Wakes>,
    pub commands: Option<mpsc::Receiver<C>>,
}

impl<C> Default for Inputs<C> {
    fn default() -> Inputs<C> {
        Inputs {
            wakes: None,
            commands: None,
        }
    }
}

impl<C> Inputs<C> {
    pub fn wakes(mut self, wakes: impl Stream<Item = ()> + Send + 'static) -> Inputs<C> {
        self.wakes = Some(Box::pin(wakes));
        self
    }

    pub fn commands(mut self, commands: mpsc::Receiver<C>) -> Inputs<C> {
        self.commands = Some(commands);
        self
    }
}

/// What woke the loop.
enum Woken<C> {
    Due,
    Change,
    Command(C),
    Stop,
}

/// Runs `reconciler` until `stop` changes (or its sender is gone): a first pass at once,
/// then one per wake-up. `name` labels the backoff warnings.
pub async fn run<R: Reconciler>(
    name: &'static str,
    mut reconciler: R,
    backoff: Backoff,
    mut inputs: Inputs<R::Command>,
    mut stop: watch::Receiver<bool>,
) {
    let mut next_look = Instant::now();
    let mut backing_off: Option<Duration> = None;
    loop {
        let woken = tokio::select! {
            _ = tokio::time::sleep_until(next_look) => Woken::Due,
            change = next_change(&mut inputs.wakes) => match change {
                Some(()) => Woken::Change,
                None => {
                    inputs.wakes = None;
                    continue;
                }
            },
            command = next_command(&mut inputs.commands) => match command {
                Some(command) => Woken::Command(command),
                None => {
                    inputs.commands = None;
                    continue;
                }
            },
            changed = stop.changed() => match changed {
                Ok(()) if !*stop.borrow() => continue,
                _ => Woken::Stop,
            },
        };
        match woken {
            Woken::Stop => break,
            // a change during a backoff waits for the backoff to end
            Woken::Change if backing_off.is_some() && Instant::now() < next_look => continue,
            Woken::Command(command) => reconciler.command(command).await,
            Woken::Due | Woken::Change => {}
        }
        let wait = match reconciler.pass().await {
            Next::After(wait) => {
                backing_off = None;
                wait
            }
            Next::Failed { message, transient } => {
                let wait = backoff.next(backing_off, transient);
                backing_off = Some(wait);
                let wait = jitter(wait);
                tracing::warn!(loop_name = name, error = %message, retry_in = ?wait, "{name}: pass failed");
                wait
            }
        };
        next_look = Instant::now() + wait;
    }
    tracing::info!(loop_name = name, "{name} loop stopped");
}

async fn next_change(wakes: &mut Option<Wakes>) -> Option<()> {
    match wakes {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

async fn next_command<C>(commands: &mut Option<mpsc::Receiver<C>>) -> Option<C> {
    match commands {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records when each pass ran (ms since the start) and answers from a script.
    struct Scripted {
        start: Instant,
        passes: Arc<Mutex<Vec<u64>>>,
        answers: Vec<Next>,
        commands: Arc<Mutex<Vec<u32>>>,
    }

    #[async_trait::async_trait]
    impl Reconciler for Scripted {
        type Command = u32;
        async fn pass(&mut self) -> Next {
            self.passes
                .lock()
                .unwrap()
                .push(self.start.elapsed().as_millis() as u64);
            if self.answers.is_empty() {
                Next::After(Duration::from_secs(1))
            } else {
                self.answers.remove(0)
            }
        }
        async fn command(&mut self, command: u32) {
            self.commands.lock().unwrap().push(command);
        }
    }

    fn failed() -> Next {
        Next::Failed {
            message: "down".into(),
            transient: true,
        }
    }

    const BACKOFF: Backoff = Backoff {
        first: Duration::from_secs(1),
        max: Duration::from_secs(4),
        terminal: Duration::from_secs(30),
    };

    #[test]
    fn backoff_doubles_from_first_to_max_and_terminal_failures_wait_longest() {
        let mut last = None;
        let mut waits = Vec::new();
        for _ in 0..5 {
            let wait = BACKOFF.next(last, true);
            waits.push(wait.as_secs());
            last = Some(wait);
        }
        assert_eq!(waits, vec![1, 2, 4, 4, 4]);
        assert_eq!(
            BACKOFF.next(Some(Duration::from_secs(2)), false).as_secs(),
            30
        );
        for wait in [
            Duration::ZERO,
            Duration::from_millis(5),
            Duration::from_secs(10),
        ] {
            let jittered = jitter(wait);
            assert!(
                jittered >= wait && jittered <= wait + wait / 10,
                "{wait:?} -> {jittered:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn passes_follow_their_own_timing_backoff_and_wakes() {
        let passes = Arc::new(Mutex::new(Vec::new()));
        let commands = Arc::new(Mutex::new(Vec::new()));
        let (wake_tx, wake_rx) = mpsc::channel::<()>(4);
        let (command_tx, command_rx) = mpsc::channel::<u32>(4);
        let (stop_tx, stop) = watch::channel(false);
        let reconciler = Scripted {
            start: Instant::now(),
            passes: passes.clone(),
            answers: vec![Next::After(Duration::from_secs(2)), failed(), failed()],
            commands: commands.clone(),
        };
        let inputs = Inputs::default()
            .wakes(tokio_stream::wrappers::ReceiverStream::new(wake_rx))
            .commands(command_rx);
        let task = tokio::spawn(run("test", reconciler, BACKOFF, inputs, stop));
        // passes at 0 (first), 2000 (After 2 s), then a failure: ~1 s of backoff, a second
        // failure: ~2 s; a wake during that backoff waits for it to end
        tokio::time::sleep(Duration::from_millis(3500)).await;
        wake_tx.send(()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        // (the wake at 3.5 s ran nothing; the fifth pass is the timer's, 1 s after the fourth)
        let seen = passes.lock().unwrap().clone();
        assert_eq!(seen.len(), 5, "{seen:?}");
        assert_eq!(&seen[..2], &[0, 2000]);
        assert!((3000..=3100).contains(&seen[2]), "{seen:?}");
        assert!((5000..=5400).contains(&seen[3]), "{seen:?}");
        assert!((6000..=6400).contains(&seen[4]), "{seen:?}");
        // healthy again (After 1 s): a wake runs a pass at once, and so does a command
        let before = passes.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(300)).await;
        wake_tx.send(()).await.unwrap();
        command_tx.send(7).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(passes.lock().unwrap().len(), before + 2);
        assert_eq!(*commands.lock().unwrap(), vec![7]);
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the loop stops when asked")
            .unwrap();
    }
}
