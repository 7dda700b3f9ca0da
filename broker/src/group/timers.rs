//! One timer task for all groups: a min-heap of (deadline, group id) wake-ups.
//!
//! Deadlines themselves (session expiry, rebalance timeout, sync timeout, initial delay) live
//! in the group state; a wake-up only says "look at group G at time T". Stale or duplicate
//! wake-ups are harmless: the group re-checks its deadlines under its lock and asks for the
//! next wake-up. The task sleeps on a tokio timer (so `tokio::time::pause` works in tests) and
//! ends when the last [`Timer`] handle is dropped.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Handle to schedule wake-ups.
pub(crate) struct Timer {
    tx: mpsc::UnboundedSender<(Instant, String)>,
}

impl Timer {
    /// Starts the timer task; `on_fire` is called with the group id of each due wake-up.
    pub(crate) fn start<F>(on_fire: F) -> (Timer, JoinHandle<()>)
    where
        F: Fn(&str) + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = tokio::spawn(run(rx, on_fire));
        (Timer { tx }, handle)
    }

    /// Asks for `on_fire(key)` at (or soon after) `at`.
    pub(crate) fn schedule(&self, at: Instant, key: &str) {
        // Fails only once the task is gone (coordinator shut down); nothing to wake then.
        let _ = self.tx.send((at, key.to_owned()));
    }
}

async fn run<F>(mut rx: mpsc::UnboundedReceiver<(Instant, String)>, on_fire: F)
where
    F: Fn(&str) + Send + 'static,
{
    let mut heap: BinaryHeap<Reverse<(Instant, u64, String)>> = BinaryHeap::new();
    let mut seq: u64 = 0;
    loop {
        let next = heap.peek().map(|Reverse((at, _, _))| *at);
        tokio::select! {
            biased;
            msg = rx.recv() => match msg {
                Some((at, key)) => {
                    seq = seq.wrapping_add(1);
                    heap.push(Reverse((at, seq, key)));
                }
                None => return,
            },
            _ = sleep_until_opt(next) => {
                let now = Instant::now();
                let mut due = Vec::new();
                let mut seen = HashSet::new();
                while let Some(Reverse((at, _, _))) = heap.peek() {
                    if *at > now {
                        break;
                    }
                    if let Some(Reverse((_, _, key))) = heap.pop() {
                        if seen.insert(key.clone()) {
                            due.push(key);
                        }
                    }
                }
                for key in due {
                    on_fire(&key);
                }
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn fires_in_deadline_order_and_dedupes() {
        let fired = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let f = fired.clone();
        let (timer, handle) = Timer::start(move |k| f.lock().push(k.to_owned()));
        let t0 = Instant::now();
        timer.schedule(t0 + Duration::from_millis(30), "b");
        timer.schedule(t0 + Duration::from_millis(10), "a");
        timer.schedule(t0 + Duration::from_millis(10), "a");
        for _ in 0..100 {
            if fired.lock().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*fired.lock(), vec!["a".to_owned(), "b".to_owned()]);
        drop(timer);
        handle.await.unwrap();
    }
}
