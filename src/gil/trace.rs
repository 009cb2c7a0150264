//! The GIL event trace: a bounded ring of lock transitions with thread and nanosecond
//! timestamps, written as JSON for the lab's timeline plot (one lane per thread).

use std::collections::VecDeque;
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

/// The newest `capacity` events; older ones are counted, not kept.
#[derive(Debug)]
pub(crate) struct TraceBuffer {
    events: VecDeque<Event>,
    capacity: usize,
    dropped: u64,
}

impl TraceBuffer {
    pub fn new(capacity: usize) -> TraceBuffer {
        TraceBuffer {
            events: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
            dropped: 0,
        }
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
        threads: Vec<TraceThread>,
    ) -> Trace {
        Trace {
            version: 1,
            variant: variant.to_owned(),
            switch_interval_us,
            threads,
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
        let trace = Trace::from_buffer(&buffer, "new", 5000, vec![]);
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
}
