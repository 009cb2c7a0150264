//! What the `clab top` dashboard shows, as plain data built from polls: the rate's recent
//! history, the latest [`Interval`], and under a GIL the last couple of seconds of the lock's
//! events, from which each thread's state, hold share, waits and drop requests, and the lane
//! strip of who held the lock, are computed. Drawing it is `crate::tui`'s.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use crate::gil::{Event, EventKind, RecentEvents};
use crate::histogram::DurationHistogram;
use crate::server::stats::StatsReport;
use crate::top::{Interval, TopError, Watcher};

/// Refreshes of the request rate kept for the sparkline.
const RATE_HISTORY: usize = 240;

/// How much of the lock's history is kept: the rows cover the last second, the strip less.
const KEPT: Duration = Duration::from_secs(2);

/// The window the per-thread figures cover.
pub const ROW_WINDOW: Duration = Duration::from_secs(1);

/// A server being watched: one connection, polled by [`Watch::poll`].
pub struct Watch {
    watcher: Watcher,
    last_stats: StatsReport,
    /// Whether the server answers `events` (a GIL, and one of ours).
    asks_events: bool,
    pub view: View,
}

/// Everything drawn, plain data.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub addr: Option<SocketAddr>,
    pub model: String,
    /// Requests per second at each refresh, oldest first.
    pub rates: VecDeque<f64>,
    pub latest: Option<Interval>,
    pub gil: Option<LockHistory>,
}

impl Watch {
    pub fn connect(addr: SocketAddr) -> Result<Watch, TopError> {
        let mut watcher = Watcher::connect(addr)?;
        let last_stats = watcher.stats()?;
        let mut watch = Watch {
            watcher,
            view: View {
                addr: Some(addr),
                model: last_stats.model.clone(),
                ..View::default()
            },
            asks_events: last_stats.gil.is_some(),
            last_stats,
        };
        watch.poll_events()?;
        Ok(watch)
    }

    /// Asks the server for its `stats` (and the lock's events since the last poll).
    pub fn poll(&mut self) -> Result<(), TopError> {
        let stats = self.watcher.stats()?;
        let own_requests = if self.asks_events { 2 } else { 1 };
        let interval = Interval::between(&self.last_stats, &stats, own_requests);
        self.view.push_rate(interval.requests_per_s);
        self.view.latest = Some(interval);
        self.last_stats = stats;
        self.poll_events()
    }

    fn poll_events(&mut self) -> Result<(), TopError> {
        if !self.asks_events {
            return Ok(());
        }
        let since = self.view.gil.as_ref().map_or(0, |gil| gil.now_ns);
        match self.watcher.events(since)? {
            Some(events) => self
                .view
                .gil
                .get_or_insert_with(LockHistory::default)
                .extend(events),
            None => self.asks_events = false,
        }
        Ok(())
    }
}

impl View {
    pub fn push_rate(&mut self, rate: f64) {
        if self.rates.len() == RATE_HISTORY {
            self.rates.pop_front();
        }
        self.rates.push_back(rate);
    }
}

/// What a thread is doing with the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadState {
    Holding,
    Waiting,
    Released,
}

impl ThreadState {
    /// The state an event puts its thread in.
    fn after(kind: EventKind) -> ThreadState {
        match kind {
            EventKind::Acquire => ThreadState::Holding,
            EventKind::Wait | EventKind::DropRequest | EventKind::Retry => ThreadState::Waiting,
            EventKind::ReleaseVoluntary | EventKind::ReleaseForced => ThreadState::Released,
        }
    }

    /// The state a thread must have been in for its first event seen to make sense.
    fn before(kind: EventKind) -> ThreadState {
        match kind {
            EventKind::Acquire | EventKind::Wait => ThreadState::Released,
            EventKind::DropRequest | EventKind::Retry => ThreadState::Waiting,
            EventKind::ReleaseVoluntary | EventKind::ReleaseForced => ThreadState::Holding,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ThreadState::Holding => "holding",
            ThreadState::Waiting => "waiting",
            ThreadState::Released => "released",
        }
    }
}

/// The lock's last couple of seconds, on its own clock.
#[derive(Debug, Clone, Default)]
pub struct LockHistory {
    pub variant: String,
    pub switch_interval: Duration,
    /// The lock's clock at the last poll.
    pub now_ns: u64,
    /// Events the server left out of its replies (more than one reply carries).
    pub skipped: u64,
    events: VecDeque<Event>,
    /// Stretches whose events were left out: nothing is known of them.
    gaps: VecDeque<(u64, u64)>,
    /// Each thread's state just before the first event kept.
    before: HashMap<u32, ThreadState>,
    names: BTreeMap<u32, String>,
}

/// One thread's figures over [`ROW_WINDOW`].
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadRow {
    pub thread: u32,
    pub name: String,
    pub now: ThreadState,
    /// The share of the window it held the lock.
    pub held: f64,
    pub wait_p50_ms: Option<f64>,
    pub wait_p99_ms: Option<f64>,
    pub drop_requests: u64,
}

impl ThreadRow {
    fn new(thread: u32, name: String) -> ThreadRow {
        ThreadRow {
            thread,
            name,
            now: ThreadState::Released,
            held: 0.0,
            wait_p50_ms: None,
            wait_p99_ms: None,
            drop_requests: 0,
        }
    }
}

/// One cell of the lane strip: what a thread did with the lock in that slice of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Held for at least half of it.
    Held,
    /// Held for less than half of it.
    Brief,
    /// Waited, without holding.
    Waiting,
    /// Waited, and asked the holder to drop.
    DropRequest,
    Idle,
    /// Its events were more than the server sends in one reply.
    Unseen,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    pub name: String,
    pub cells: Vec<Cell>,
}

/// A stretch of time one thread spent in one state.
#[derive(Debug, Clone, Copy)]
struct Span {
    thread: u32,
    state: ThreadState,
    from_ns: u64,
    to_ns: u64,
}

impl LockHistory {
    /// Adds one poll's events and forgets those older than `KEPT` (two seconds).
    pub fn extend(&mut self, recent: RecentEvents) {
        self.variant = recent.variant;
        self.switch_interval = Duration::from_micros(recent.switch_interval_us);
        if recent.skipped > 0 {
            let first = recent.events.first().map_or(recent.now_ns, |e| e.t_ns);
            self.gaps.push_back((self.now_ns, first));
        }
        self.now_ns = self.now_ns.max(recent.now_ns);
        self.skipped += recent.skipped;
        for thread in recent.threads {
            self.names.insert(thread.id, thread.name);
        }
        self.events.extend(recent.events);
        let horizon = self.now_ns.saturating_sub(KEPT.as_nanos() as u64);
        while self.events.front().is_some_and(|e| e.t_ns < horizon) {
            let event = self.events.pop_front().expect("checked above");
            self.before
                .insert(event.thread, ThreadState::after(event.event));
        }
        while self.gaps.front().is_some_and(|gap| gap.1 < horizon) {
            self.gaps.pop_front();
        }
        // A thread released before the kept events and absent from them shows nowhere (no
        // row, no lane): it is forgotten, so connections that came and went do not pile up.
        let seen: HashSet<u32> = self.events.iter().map(|event| event.thread).collect();
        self.before
            .retain(|id, state| *state != ThreadState::Released || seen.contains(id));
        let before = &self.before;
        self.names
            .retain(|id, _| before.contains_key(id) || seen.contains(id));
    }

    fn name(&self, thread: u32) -> String {
        self.names
            .get(&thread)
            .cloned()
            .unwrap_or_else(|| format!("thread {thread}"))
    }

    /// Every thread's states from the first kept event to now, in time order per thread.
    fn spans(&self) -> Vec<Span> {
        let start = self.events.front().map_or(self.now_ns, |e| e.t_ns);
        let mut current: BTreeMap<u32, (ThreadState, u64)> = BTreeMap::new();
        for (thread, state) in &self.before {
            current.insert(*thread, (*state, start));
        }
        let mut spans = Vec::new();
        for event in &self.events {
            let entry = current
                .entry(event.thread)
                .or_insert((ThreadState::before(event.event), start));
            let state = ThreadState::after(event.event);
            if state != entry.0 {
                spans.push(Span {
                    thread: event.thread,
                    state: entry.0,
                    from_ns: entry.1,
                    to_ns: event.t_ns,
                });
                *entry = (state, event.t_ns);
            }
        }
        for (thread, (state, from_ns)) in current {
            spans.push(Span {
                thread,
                state,
                from_ns,
                to_ns: self.now_ns.max(from_ns),
            });
        }
        spans
    }

    /// Each thread active in the last [`ROW_WINDOW`] (or holding or waiting now), busiest
    /// holder first.
    pub fn rows(&self) -> Vec<ThreadRow> {
        self.rows_over(ROW_WINDOW)
    }

    /// The thread that held the lock longest over the last `window`, and its share of it.
    pub fn holder_over(&self, window: Duration) -> Option<(String, f64)> {
        let top = self.rows_over(window).into_iter().next()?;
        (top.held > 0.0).then_some((top.name, top.held))
    }

    /// [`rows`](LockHistory::rows) over the last `window`.
    pub fn rows_over(&self, window: Duration) -> Vec<ThreadRow> {
        let from = self.now_ns.saturating_sub(window.as_nanos() as u64);
        // Shares are of the time whose events arrived.
        let window_ns = (self.now_ns - from - self.unseen(from, self.now_ns)).max(1);
        let mut rows: BTreeMap<u32, ThreadRow> = BTreeMap::new();
        let mut waits: BTreeMap<u32, DurationHistogram> = BTreeMap::new();
        for span in self.spans() {
            let (start, end) = (span.from_ns.max(from), span.to_ns.min(self.now_ns));
            // Time in a gap is not known to have been spent so.
            let overlap = end
                .saturating_sub(start)
                .saturating_sub(self.unseen(start, end.max(start)));
            let active = span.state != ThreadState::Released && span.to_ns >= self.now_ns;
            if overlap == 0 && !active && span.state == ThreadState::Released {
                continue;
            }
            let row = rows
                .entry(span.thread)
                .or_insert_with(|| ThreadRow::new(span.thread, self.name(span.thread)));
            if span.to_ns >= self.now_ns {
                row.now = span.state;
            }
            match span.state {
                ThreadState::Holding => {
                    row.held = (row.held + overlap as f64 / window_ns as f64).min(1.0)
                }
                // A wait that ended in the window, by its whole length.
                ThreadState::Waiting if span.to_ns >= from && span.to_ns < self.now_ns => waits
                    .entry(span.thread)
                    .or_insert_with(|| DurationHistogram::new(2))
                    .record(Duration::from_nanos(span.to_ns - span.from_ns)),
                _ => {}
            }
        }
        for event in self.drop_requests_since(from) {
            if let Some(row) = rows.get_mut(&event.thread) {
                row.drop_requests += 1;
            }
        }
        for (thread, waits) in waits {
            if let Some(row) = rows.get_mut(&thread) {
                let waits = waits.percentiles();
                (row.wait_p50_ms, row.wait_p99_ms) = (waits.p50, waits.p99);
            }
        }
        let mut rows: Vec<ThreadRow> = rows
            .into_values()
            .filter(|row| {
                row.held > 0.0 || row.now != ThreadState::Released || row.wait_p50_ms.is_some()
            })
            .collect();
        rows.sort_by(|a, b| b.held.total_cmp(&a.held).then_with(|| a.name.cmp(&b.name)));
        rows
    }

    fn drop_requests_since(&self, from: u64) -> impl Iterator<Item = &Event> {
        self.events
            .iter()
            .filter(move |e| e.t_ns >= from && e.event == EventKind::DropRequest)
    }

    /// Whether some of the kept history was too busy to fetch whole.
    pub fn has_gaps(&self) -> bool {
        !self.gaps.is_empty()
    }

    /// How much of `from..to` falls in gaps.
    fn unseen(&self, from: u64, to: u64) -> u64 {
        self.gaps
            .iter()
            .map(|&(start, end)| end.min(to).saturating_sub(start.max(from)))
            .sum()
    }

    /// The last `span` cut into `cells` slices, one lane per thread in `rows` order.
    pub fn lanes(&self, span: Duration, cells: usize, rows: &[ThreadRow]) -> Vec<Lane> {
        let cells = cells.max(1);
        let span_ns = span.as_nanos() as u64;
        let from = self.now_ns.saturating_sub(span_ns);
        let cell_ns = (span_ns / cells as u64).max(1);
        // Per thread and cell: (held ns, waited ns, asked to drop).
        let mut time: HashMap<u32, Vec<(u64, u64, bool)>> = HashMap::new();
        let cell_of = |t: u64| (((t.saturating_sub(from)) / cell_ns) as usize).min(cells - 1);
        for span in self.spans() {
            let (start, end) = (span.from_ns.max(from), span.to_ns.min(self.now_ns));
            if end <= start || span.state == ThreadState::Released {
                continue;
            }
            let lane = time
                .entry(span.thread)
                .or_insert_with(|| vec![(0, 0, false); cells]);
            let mut t = start;
            while t < end {
                let cell = cell_of(t);
                let cell_end = (from + (cell as u64 + 1) * cell_ns).min(end).max(t + 1);
                let slot = &mut lane[cell];
                match span.state {
                    ThreadState::Holding => slot.0 += cell_end - t,
                    _ => slot.1 += cell_end - t,
                }
                t = cell_end;
            }
        }
        for event in self.drop_requests_since(from) {
            if let Some(lane) = time.get_mut(&event.thread) {
                lane[cell_of(event.t_ns)].2 = true;
            }
        }
        // A cell mostly in a gap shows that nothing is known of it, not idleness.
        let unseen: Vec<bool> = (0..cells as u64)
            .map(|cell| {
                let start = from + cell * cell_ns;
                self.unseen(start, start + cell_ns) * 2 > cell_ns
            })
            .collect();
        rows.iter()
            .map(|row| {
                let slots = time.get(&row.thread);
                let cells = (0..cells)
                    .map(|cell| match slots.map(|slots| slots[cell]) {
                        _ if unseen[cell] => Cell::Unseen,
                        Some((held, _, _)) if held * 2 >= cell_ns => Cell::Held,
                        Some((held, _, _)) if held > 0 => Cell::Brief,
                        Some((_, _, true)) => Cell::DropRequest,
                        Some((_, waited, _)) if waited > 0 => Cell::Waiting,
                        _ => Cell::Idle,
                    })
                    .collect();
                Lane {
                    name: row.name.clone(),
                    cells,
                }
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gil::TraceThread;

    const MS: u64 = 1_000_000;

    fn at(t_ns: u64, thread: u32, event: EventKind) -> Event {
        Event {
            t_ns,
            thread,
            event,
        }
    }

    /// A reply to `events` at `now_ns` under the new GIL, naming `threads` by id.
    fn poll(now_ns: u64, threads: &[(u32, &str)], events: Vec<Event>) -> RecentEvents {
        RecentEvents {
            now_ns,
            variant: "new".into(),
            switch_interval_us: 5000,
            skipped: 0,
            threads: threads
                .iter()
                .map(|&(id, name)| TraceThread {
                    id,
                    name: name.into(),
                })
                .collect(),
            events,
        }
    }

    /// One second of the convoy under the new GIL, as the server reports it: the hog (1)
    /// holds; every 5 ms the rapid thread (2), having waited an interval, asks it to drop,
    /// takes the lock for 50 µs, releases it around its socket call and waits again.
    pub(crate) fn convoy() -> LockHistory {
        use EventKind::*;
        let mut events = vec![at(0, 1, Acquire), at(10_000, 2, Wait)];
        let mut t = 10_000;
        while t + 6 * MS < 1_000 * MS {
            let drop_at = t + 5 * MS;
            events.extend([
                at(drop_at, 2, DropRequest),
                at(drop_at + 10_000, 1, ReleaseForced),
                at(drop_at + 20_000, 2, Acquire),
                at(drop_at + 30_000, 1, Wait),
                at(drop_at + 70_000, 2, ReleaseVoluntary),
                at(drop_at + 80_000, 1, Acquire),
                at(drop_at + 90_000, 2, Wait),
            ]);
            t = drop_at + 90_000;
        }
        let mut history = LockHistory::default();
        history.extend(poll(1_000 * MS, &[(1, "hog"), (2, "rapid")], events));
        history
    }

    #[test]
    fn rows_are_each_threads_state_hold_share_waits_and_drop_requests() {
        let rows = convoy().rows();
        assert_eq!(rows.len(), 2, "{rows:?}");
        let (hog, rapid) = (&rows[0], &rows[1]);
        assert_eq!((hog.name.as_str(), hog.now), ("hog", ThreadState::Holding));
        assert!(hog.held > 0.98, "{hog:?}");
        assert_eq!(
            (rapid.name.as_str(), rapid.now),
            ("rapid", ThreadState::Waiting)
        );
        assert!(rapid.held > 0.005 && rapid.held < 0.02, "{rapid:?}");
        let p50 = rapid.wait_p50_ms.unwrap();
        assert!((p50 - 5.02).abs() < 0.05, "{rapid:?}");
        assert!((190..=200).contains(&rapid.drop_requests), "{rapid:?}");
    }

    #[test]
    fn lanes_cut_the_last_span_into_cells() {
        let history = convoy();
        let rows = history.rows();
        let lanes = history.lanes(Duration::from_millis(500), 100, &rows);
        assert_eq!(lanes.len(), 2);
        let count = |lane: &Lane, cell: Cell| lane.cells.iter().filter(|c| **c == cell).count();
        assert!(count(&lanes[0], Cell::Held) >= 98, "{:?}", lanes[0]);
        // One brief hold in each 5 ms: in every cell of 5 ms, give or take a boundary.
        assert!(count(&lanes[1], Cell::Brief) >= 95, "{:?}", lanes[1]);
    }

    #[test]
    fn a_thread_released_long_ago_is_forgotten_and_one_holding_is_not() {
        let threads = [(1, "hog"), (3, "came and went")];
        let mut history = LockHistory::default();
        history.extend(poll(
            2 * MS,
            &threads,
            vec![
                at(0, 1, EventKind::Acquire),
                at(MS, 3, EventKind::Wait),
                at(2 * MS, 3, EventKind::Acquire),
                at(2 * MS, 3, EventKind::ReleaseVoluntary),
            ],
        ));
        history.extend(poll(4_000 * MS, &threads, vec![]));
        assert_eq!(history.before.get(&1), Some(&ThreadState::Holding));
        assert!(!history.before.contains_key(&3) && !history.names.contains_key(&3));
        assert_eq!(history.rows()[0].name, "hog");
    }

    #[test]
    fn a_poll_too_busy_to_fetch_whole_leaves_a_gap_not_idleness() {
        let mut history = convoy();
        let released = vec![at(1_099 * MS, 1, EventKind::ReleaseVoluntary)];
        history.extend(RecentEvents {
            skipped: 10_000,
            ..poll(1_100 * MS, &[], released)
        });
        assert!(history.has_gaps());
        let rows = history.rows();
        let lanes = history.lanes(Duration::from_millis(500), 100, &rows);
        let unseen = lanes[0]
            .cells
            .iter()
            .filter(|c| **c == Cell::Unseen)
            .count();
        assert!((18..=20).contains(&unseen), "{:?}", lanes[0]);
        // Shares are of the time seen: the hog held the rest of it, and no more.
        let hog = rows.iter().find(|r| r.name == "hog").unwrap().held;
        assert!(hog > 0.95 && hog <= 1.0, "{hog}");
    }
}
