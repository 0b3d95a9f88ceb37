//! The history of pod changes that watches read, bounded like the Kubernetes watch cache.

use std::collections::VecDeque;
use std::sync::Arc;

use cci_api::Pod;

/// What happened to the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// It was created.
    Added,
    /// It changed.
    Modified,
    /// It is gone.
    Deleted,
}

impl EventType {
    /// As a watch stream spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change of one pod.
#[derive(Clone, Debug)]
pub struct PodEvent {
    /// The `resourceVersion` of the change.
    pub rv: u64,
    /// The pod's namespace.
    pub namespace: Arc<str>,
    /// What happened.
    pub type_: EventType,
    /// The pod after the change (as it was last, for `Deleted`).
    pub pod: Arc<Pod>,
}

/// The latest changes, oldest first.
#[derive(Debug)]
pub struct History {
    events: VecDeque<PodEvent>,
    capacity: usize,
    /// The highest `resourceVersion` among the changes no longer kept (0 when none was dropped).
    compacted_through: u64,
}

/// A watch asked for changes that are no longer kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gone {
    /// The oldest `resourceVersion` a watch may still start from.
    pub oldest: u64,
}

impl History {
    /// An empty history keeping at most `capacity` changes.
    pub fn new(capacity: usize) -> Self {
        Self {
            events: VecDeque::new(),
            capacity: capacity.max(1),
            compacted_through: 0,
        }
    }

    /// Records a change.
    pub fn push(&mut self, event: PodEvent) {
        if self.events.len() == self.capacity
            && let Some(dropped) = self.events.pop_front()
        {
            self.compacted_through = dropped.rv;
        }
        self.events.push_back(event);
    }

    /// Forgets everything up to `rv` (after a reset).
    pub fn compact_through(&mut self, rv: u64) {
        self.events.clear();
        self.compacted_through = self.compacted_through.max(rv);
    }

    /// The changes after `since` in `namespace` that `keep` keeps, or [`Gone`] when some of them
    /// were dropped.
    pub fn since(
        &self,
        namespace: &str,
        since: u64,
        mut keep: impl FnMut(&PodEvent) -> bool,
    ) -> Result<Vec<PodEvent>, Gone> {
        if since < self.compacted_through {
            return Err(Gone {
                oldest: self.compacted_through,
            });
        }
        // NB: events are in rv order, so skip the old ones by binary search.
        let start = self.events.partition_point(|e| e.rv <= since);
        Ok(self
            .events
            .range(start..)
            .filter(|e| &*e.namespace == namespace && keep(e))
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(rv: u64, namespace: &str) -> PodEvent {
        PodEvent {
            rv,
            namespace: namespace.into(),
            type_: EventType::Modified,
            pod: Arc::new(Pod::default()),
        }
    }

    #[test]
    fn a_watch_gets_later_events_of_its_namespace_until_they_are_dropped() {
        let mut history = History::new(3);
        for (rv, ns) in [(1, "a"), (2, "b"), (3, "a")] {
            history.push(event(rv, ns));
        }
        let rvs = |events: Vec<PodEvent>| events.iter().map(|e| e.rv).collect::<Vec<_>>();
        assert_eq!(rvs(history.since("a", 0, |_| true).unwrap()), [1, 3]);
        assert_eq!(rvs(history.since("a", 1, |_| true).unwrap()), [3]);
        history.push(event(4, "a"));
        assert_eq!(
            history.since("a", 0, |_| true).unwrap_err(),
            Gone { oldest: 1 }
        );
        assert_eq!(rvs(history.since("a", 1, |_| true).unwrap()), [3, 4]);
        history.compact_through(9);
        assert!(history.since("a", 4, |_| true).is_err());
        assert!(history.since("a", 9, |_| true).unwrap().is_empty());
    }
}
