//! The GIL event trace: a bounded ring of lock transitions with thread and nanosecond
//! timestamps, written as JSON for the lab's timeline plot (one lane per thread), and read
//! live by `clab top` through the `events` request ([`RecentEvents`]).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{self, Write};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The thread asked for the GIL (and found it taken).
    Wait,
    /// The thread took the GIL.
    Acquire,
    /// The thread released it around a blocking call or at exit.
    ReleaseVoluntary,
    /// The thread released it at a checkpoint because it was asked to (or, legacy, by ticks).
    ReleaseForced,
    /// A waiter asked the holder to drop the GIL.
    DropRequest,
    /// A waiter woke up and found the GIL taken again.
    Retry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Event {
    /// Nanoseconds since the GIL was created.
    pub t_ns: u64,
    pub thread: u32,
    pub event: EventKind,
}

/// The newest `capacity` events; older ones are counted, not kept. It also names the
/// threads its events may mention.
#[derive(Debug)]
pub(crate) struct TraceBuffer {
    events: VecDeque<Event>,
    capacity: usize,
    dropped: u64,
    names: BTreeMap<u32, String>,
    /// How many names may be held before those of threads that neither live nor appear in
    /// an event are let go.
    prune_at: usize,
}

/// The fewest names held before any are let go (a server that has served millions of
/// connections must not keep millions of names).
const NAMES_KEPT: usize = 4096;

impl TraceBuffer {
    pub fn new(capacity: usize) -> TraceBuffer {
        TraceBuffer {
            events: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
            dropped: 0,
            names: BTreeMap::new(),
            prune_at: NAMES_KEPT,
        }
    }

    /// A thread attached under `name`; `live` tells which threads are still attached.
    pub fn attached(&mut self, id: u32, name: String, live: impl Fn(u32) -> bool) {
        if self.names.len() >= self.prune_at {
            let mentioned: HashSet<u32> = self.events.iter().map(|event| event.thread).collect();
            self.names
                .retain(|id, _| live(*id) || mentioned.contains(id));
            // What is left stays until the names double again, so attaching costs a scan of
            // the ring only now and then, however many threads live at once.
            self.prune_at = (2 * self.names.len()).max(NAMES_KEPT);
        }
        self.names.insert(id, name);
    }

    fn threads(&self, ids: impl IntoIterator<Item = u32>) -> Vec<TraceThread> {
        let ids: std::collections::BTreeSet<u32> = ids.into_iter().collect();
        ids.into_iter()
            .map(|id| TraceThread {
                id,
                name: self
                    .names
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| format!("thread {id}")),
            })
            .collect()
    }

    /// The events after `since_ns`, at most the newest `max`, and how many more there were.
    fn since(&self, since_ns: u64, max: usize) -> (u64, Vec<Event>) {
        // Pushed in order under the lock's mutex, so the timestamps only grow.
        let first = self.events.partition_point(|event| event.t_ns <= since_ns);
        let after = self.events.len() - first;
        let kept = after.min(max);
        let events = self
            .events
            .range(self.events.len() - kept..)
            .copied()
            .collect();
        ((after - kept) as u64, events)
    }

    pub fn push(&mut self, event: Event) {
        if self.capacity == 0 {
            self.dropped += 1;
            return;
        }
        if self.events.len() == self.capacity {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back(event);
    }
}

/// A thread's lane in the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TraceThread {
    pub id: u32,
    pub name: String,
}

/// The trace file's content (version 1).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Trace {
    pub version: u32,
    pub variant: String,
    pub switch_interval_us: u64,
    pub threads: Vec<TraceThread>,
    /// Events older than the buffer could hold, left out from the start.
    pub dropped_events: u64,
    pub events: Vec<Event>,
}

impl Trace {
    pub(crate) fn from_buffer(
        buffer: &TraceBuffer,
        variant: &str,
        switch_interval_us: u64,
    ) -> Trace {
        Trace {
            version: 1,
            variant: variant.to_owned(),
            switch_interval_us,
            threads: buffer.threads(buffer.names.keys().copied()),
            dropped_events: buffer.dropped,
            events: buffer.events.iter().copied().collect(),
        }
    }

    pub fn write_json(&self, out: impl Write) -> io::Result<()> {
        let mut out = io::BufWriter::new(out);
        serde_json::to_writer(&mut out, self)?;
        out.write_all(b"\n")?;
        out.flush()
    }
}

/// The reply to `events <since_ns>`: what the lock did after `since_ns`, for a watcher
/// that polls (`clab top`). Only the newest events fit one reply; the rest are counted.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct RecentEvents {
    /// The lock's clock now, nanoseconds since it was created: the next poll's `since_ns`.
    pub now_ns: u64,
    pub variant: String,
    pub switch_interval_us: u64,
    /// Events after `since_ns` older than the ones sent, left out.
    pub skipped: u64,
    /// The threads the events mention.
    pub threads: Vec<TraceThread>,
    pub events: Vec<Event>,
}

impl RecentEvents {
    /// The most events one reply carries: about 200 KB of JSON.
    pub const MAX_EVENTS: usize = 4096;

    pub(crate) fn from_buffer(
        buffer: &TraceBuffer,
        since_ns: u64,
        now_ns: u64,
        variant: &str,
        switch_interval_us: u64,
    ) -> RecentEvents {
        let (skipped, events) = buffer.since(since_ns, Self::MAX_EVENTS);
        RecentEvents {
            now_ns,
            variant: variant.to_owned(),
            switch_interval_us,
            skipped,
            threads: buffer.threads(events.iter().map(|event| event.thread)),
            events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_events_and_counts_the_rest() {
        let mut buffer = TraceBuffer::new(2);
        for t_ns in 0..5 {
            buffer.push(Event {
                t_ns,
                thread: 1,
                event: EventKind::Acquire,
            });
        }
        let trace = Trace::from_buffer(&buffer, "new", 5000);
        assert_eq!(trace.dropped_events, 3);
        assert_eq!(
            trace.events.iter().map(|e| e.t_ns).collect::<Vec<_>>(),
            [3, 4]
        );
        let mut json = Vec::new();
        trace.write_json(&mut json).unwrap();
        let back: Trace = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, trace);
    }

    fn event(t_ns: u64, thread: u32) -> Event {
        Event {
            t_ns,
            thread,
            event: EventKind::Acquire,
        }
    }

    #[test]
    fn a_watcher_gets_the_newest_events_after_its_last_poll() {
        let mut buffer = TraceBuffer::new(100);
        buffer.attached(1, "connection 0".into(), |_| true);
        buffer.attached(2, "connection 1".into(), |_| true);
        for t_ns in 1..=10 {
            buffer.push(event(t_ns * 10, if t_ns <= 5 { 1 } else { 2 }));
        }
        let recent = RecentEvents::from_buffer(&buffer, 50, 200, "new", 5000);
        assert_eq!(recent.skipped, 0);
        assert_eq!(recent.events.first().map(|e| e.t_ns), Some(60));
        assert_eq!(
            recent.threads,
            [TraceThread {
                id: 2,
                name: "connection 1".into()
            }]
        );
        let (skipped, events) = buffer.since(0, 3);
        assert_eq!(
            (skipped, events.iter().map(|e| e.t_ns).collect::<Vec<_>>()),
            (7, vec![80, 90, 100])
        );
        assert!(buffer.since(100, 3).1.is_empty());
    }

    #[test]
    fn names_of_ended_threads_no_event_mentions_are_let_go() {
        let mut buffer = TraceBuffer::new(10);
        // Thread 1 lives on; every other one has ended by the time names are let go.
        let live = |id: u32| id == 1;
        buffer.attached(1, "kept: live".into(), live);
        buffer.attached(2, "kept: in an event".into(), live);
        buffer.push(event(1, 2));
        for id in 3..NAMES_KEPT as u32 + 2 {
            buffer.attached(id, format!("connection {id}"), live);
        }
        assert!(buffer.names.len() < NAMES_KEPT);
        assert!(buffer.names.contains_key(&1) && buffer.names.contains_key(&2));
    }
}
