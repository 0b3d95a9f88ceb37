//! A work queue keyed by object: deduplicated, one worker per key at a time, per-key backoff.
//!
//! The semantics are client-go's: a key added while queued is not queued twice; a key added
//! while a worker holds it is queued again when that worker is done, so the latest state is
//! always reconciled once more and never by two workers at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

struct State<K> {
    queue: VecDeque<K>,
    queued: HashSet<K>,
    active: HashSet<K>,
    dirty: HashSet<K>,
    failures: HashMap<K, u32>,
    closed: bool,
}

/// The queue. Cheap to share behind an `Arc`.
pub(crate) struct WorkQueue<K> {
    state: Mutex<State<K>>,
    notify: Notify,
    base: Duration,
    max: Duration,
}

impl<K: Clone + Eq + Hash + Send + 'static> WorkQueue<K> {
    /// A queue whose retries back off from `base`, doubling up to `max`.
    pub(crate) fn new(base: Duration, max: Duration) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued: HashSet::new(),
                active: HashSet::new(),
                dirty: HashSet::new(),
                failures: HashMap::new(),
                closed: false,
            }),
            notify: Notify::new(),
            base,
            max,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<K>> {
        // NB: no code panics while holding the lock, so poisoning cannot carry a broken state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `key` for processing.
    pub(crate) fn add(&self, key: K) {
        let mut s = self.lock();
        if s.closed || s.queued.contains(&key) {
            return;
        }
        if s.active.contains(&key) {
            s.dirty.insert(key);
            return;
        }
        s.queued.insert(key.clone());
        s.queue.push_back(key);
        drop(s);
        self.notify.notify_one();
    }

    /// Queue `key` after `delay`.
    pub(crate) fn add_after(self: &Arc<Self>, key: K, delay: Duration) {
        let queue = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(key);
        });
    }

    /// Queue `key` again after its backoff, which doubles with each consecutive failure.
    /// Returns the delay chosen.
    pub(crate) fn retry(self: &Arc<Self>, key: K) -> Duration {
        let delay = {
            let mut s = self.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            let delay = backoff(self.base, self.max, *n);
            *n = n.saturating_add(1);
            delay
        };
        self.add_after(key, delay);
        delay
    }

    /// Reset the backoff of `key` after a success.
    pub(crate) fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// The next key to process; `None` once the queue is closed.
    pub(crate) async fn next(&self) -> Option<K> {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.lock();
                if s.closed {
                    return None;
                }
                if let Some(key) = s.queue.pop_front() {
                    s.queued.remove(&key);
                    s.active.insert(key.clone());
                    let more = !s.queue.is_empty();
                    drop(s);
                    if more {
                        // Pass the baton: another worker may take the next key.
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
            }
            notified.await;
        }
    }

    /// The worker is done with `key`; requeue it if it was added meanwhile.
    pub(crate) fn done(&self, key: &K) {
        let mut s = self.lock();
        s.active.remove(key);
        if s.dirty.remove(key) && !s.closed && s.queued.insert(key.clone()) {
            s.queue.push_back(key.clone());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Stop handing out keys; waiting workers get `None`.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }
}

/// `base * 2^failures`, capped at `max`.
pub(crate) fn backoff(base: Duration, max: Duration, failures: u32) -> Duration {
    base.checked_mul(1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        assert_eq!(backoff(base, max, 0), Duration::from_millis(100));
        assert_eq!(backoff(base, max, 3), Duration::from_millis(800));
        assert_eq!(backoff(base, max, 10), max);
        assert_eq!(backoff(base, max, 64), max);
    }

    #[tokio::test]
    async fn a_key_added_twice_is_queued_once() {
        let q = WorkQueue::new(Duration::from_millis(1), Duration::from_millis(1));
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.next().await, Some("a"));
        assert_eq!(q.next().await, Some("b"));
        q.close();
        assert_eq!(q.next().await, None);
    }

    #[tokio::test]
    async fn a_key_added_while_active_comes_back_after_done() {
        let q = WorkQueue::new(Duration::from_millis(1), Duration::from_millis(1));
        q.add("a");
        assert_eq!(q.next().await, Some("a"));
        q.add("a");
        // Not handed to a second worker while the first holds it.
        assert!(q.lock().queue.is_empty());
        q.done(&"a");
        assert_eq!(q.next().await, Some("a"));
    }

    #[tokio::test]
    async fn retry_requeues_the_key_after_its_backoff() {
        let q = WorkQueue::new(Duration::from_millis(5), Duration::from_millis(50));
        q.add("a");
        let key = q.next().await.unwrap();
        assert_eq!(q.retry(key), Duration::from_millis(5));
        q.done(&key);
        let again = tokio::time::timeout(Duration::from_secs(5), q.next()).await;
        assert_eq!(again.unwrap(), Some("a"));
        assert_eq!(q.retry("a"), Duration::from_millis(10));
        q.forget(&"a");
        assert_eq!(q.retry("a"), Duration::from_millis(5));
    }
}
