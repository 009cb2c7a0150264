//! What one more connection costs a server: a thread reserves its whole stack as virtual
//! memory but touches only a few pages; an event-loop task is a small heap object; a
//! pre-forked connection is a whole process. Read from `/proc` while idle connections are
//! held open.

use std::time::Duration;

use crate::lab::outcome::{Chart, Figure, Table};
use crate::lab::process::{ChildServer, Usage};
use crate::lab::{Check, Experiment, Lab, LabError, Report, Verdict};
use crate::load::{ClassPlan, LoadResult, Pacing};

pub static EXPERIMENT: Experiment = Experiment {
    id: "thread-memory",
    claim: "a thread reserves ~8 MB of virtual stack but costs far less resident memory; what a thread, a task and a process cost per connection",
    essay: "Beazley, A Tale of Two Concurrencies (Part 1): a thread's 8 MB stack is a reservation of virtual memory, not physical memory",
    rule: "threads with 8 MiB stacks, per idle connection: holds when virtual memory grows > 6 MiB \
           and resident memory < 1/8 of that; does not hold when virtual < 4 MiB or resident > 1/2 of virtual.",
    history: &[],
    run,
};

/// The memory of a server before and while `connections` idle connections are open.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Held {
    pub before: Usage,
    pub during: Usage,
    /// The machine's kernel stacks (`KernelStack` in `/proc/meminfo`), which a process's
    /// resident memory leaves out: each thread has one, 16 KiB on x86-64.
    pub kernel_stacks_before_kib: u64,
    pub kernel_stacks_during_kib: u64,
    pub opened: u64,
    pub load: LoadResult,
}

/// Opens `connections` idle connections (plus `extra` classes) for `window`, sampling the
/// server's `/proc` every second; keeps the sample with the most resident memory.
pub fn hold(
    lab: &Lab,
    server: &ChildServer,
    connections: usize,
    extra: Vec<ClassPlan>,
    window: Duration,
) -> Result<Held, LabError> {
    let before = server.usage();
    let kernel_stacks_before_kib = kernel_stacks_kib();
    let mut kernel_stacks_during_kib = kernel_stacks_before_kib;
    let mut classes = vec![
        ClassPlan::new(
            "idle",
            connections,
            "fib 1",
            Pacing::Idle { interval: None },
        )
        .expect("a valid request"),
    ];
    classes.extend(extra);
    let mut during = before;
    let load = lab.load_sampling(server, lab.plan(server, window, classes), |_| {
        let now = server.usage();
        if now.rss_kib >= during.rss_kib {
            during = now;
            kernel_stacks_during_kib = kernel_stacks_kib();
        }
    })?;
    let opened = crate::lab::class(&load, "idle")?.connections_opened;
    Ok(Held {
        before,
        during,
        kernel_stacks_before_kib,
        kernel_stacks_during_kib,
        opened,
        load,
    })
}

/// The whole machine's kernel stacks now, in KiB (0 when unreadable).
fn kernel_stacks_kib() -> u64 {
    use procfs::Current;
    procfs::Meminfo::current()
        .ok()
        .and_then(|info| info.kernel_stack)
        .map_or(0, |bytes| bytes / 1024)
}

impl Held {
    /// Kernel stack memory per connection, in KiB (machine-wide, so other processes' threads
    /// starting or ending meanwhile blur it).
    pub fn kernel_stack_per_connection(&self) -> f64 {
        per_connection(
            self.kernel_stacks_before_kib,
            self.kernel_stacks_during_kib,
            self.opened,
        )
    }
}

/// KiB per connection between two samples.
pub fn per_connection(before: u64, during: u64, connections: u64) -> f64 {
    during.saturating_sub(before) as f64 / connections.max(1) as f64
}

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let connections = lab.profile.pick(200, 1000, 1000);
    let processes = lab.profile.pick(8, 32, 32);
    let one = lab.placement.server_one.clone();
    let window = Duration::from_millis(1500);
    let mut table = Table::new(
        "Memory per idle connection",
        &[
            "server",
            "connections",
            "virtual (KiB)",
            "resident (KiB)",
            "proportional, PSS (KiB)",
            "kernel stacks (KiB)",
            "threads",
        ],
    );
    let mut bars = Vec::new();
    let mut thread_costs = (0.0, 0.0);
    let mut raw = Vec::new();
    for (label, args) in [
        (
            "threads, 8 MiB stacks",
            vec!["--model", "threads", "--thread-stack", "8m"],
        ),
        ("eventloop (a task each)", vec!["--model", "eventloop"]),
        ("async (a task each)", vec!["--model", "async"]),
    ] {
        lab.step(&format!("thread-memory: {label}"));
        let server = lab.serve(&args, &one)?;
        let held = hold(lab, &server, connections, Vec::new(), window)?;
        server.stop();
        let n = held.opened;
        let virtual_kib = per_connection(held.before.virtual_kib, held.during.virtual_kib, n);
        let resident = per_connection(held.before.rss_kib, held.during.rss_kib, n);
        let pss = per_connection(held.before.pss_kib, held.during.pss_kib, n);
        if args[1] == "threads" {
            thread_costs = (virtual_kib, resident);
        }
        table.row(vec![
            label.into(),
            n.to_string(),
            format!("{virtual_kib:.1}"),
            format!("{resident:.1}"),
            format!("{pss:.1}"),
            format!("{:.1}", held.kernel_stack_per_connection()),
            held.during.threads.to_string(),
        ]);
        bars.push((label.to_string(), virtual_kib, resident));
        raw.push((label, held));
    }
    // A pre-forked connection is a whole process: what each child costs, shared pages split.
    lab.step("thread-memory: prefork");
    let workers = processes.to_string();
    let server = lab.serve(&["--model", "prefork", "--workers", &workers], &one)?;
    let held = hold(lab, &server, processes, Vec::new(), window)?;
    server.stop();
    let children = held.during.processes.saturating_sub(1).max(1) as f64;
    let (virtual_kib, resident, pss) = (
        held.during.virtual_kib as f64 / held.during.processes.max(1) as f64,
        held.during.rss_kib as f64 / held.during.processes.max(1) as f64,
        held.during.pss_kib as f64 / children,
    );
    table.row(vec![
        format!("prefork (a process each, {processes} children)"),
        held.opened.to_string(),
        format!("{virtual_kib:.1}"),
        format!("{resident:.1}"),
        format!("{pss:.1}"),
        format!("{:.1}", held.kernel_stack_per_connection()),
        held.during.threads.to_string(),
    ]);
    bars.push(("prefork (a process each)".into(), virtual_kib, pss));
    raw.push(("prefork", held));

    let (thread_virtual, thread_resident) = thread_costs;
    let mut report = Report::default();
    let verdict = if thread_virtual > 6.0 * 1024.0 && thread_resident < thread_virtual / 8.0 {
        Verdict::Holds
    } else if thread_virtual < 4.0 * 1024.0 || thread_resident > thread_virtual / 2.0 {
        Verdict::DoesNotHold
    } else {
        Verdict::Inconclusive
    };
    report.checks.push(Check::new(
        "threads: 8 MiB of virtual stack, little resident",
        verdict,
        format!(
            "per connection {:.1} MiB virtual, {thread_resident:.0} KiB resident",
            thread_virtual / 1024.0
        ),
    ));
    report.summary = format!(
        "a thread per connection reserved {:.1} MiB of virtual memory but {thread_resident:.0} KiB resident; an event-loop task {:.1} KiB; a pre-forked process {pss:.0} KiB (PSS)",
        thread_virtual / 1024.0,
        bars[1].2,
    );
    report.tables.push(table);
    report.figures.push(Figure {
        name: "memory".into(),
        title: "Memory per connection (resident; PSS for processes)".into(),
        x_label: "server".into(),
        y_label: "KiB per connection".into(),
        chart: Chart::Bars {
            categories: bars.iter().map(|b| b.0.clone()).collect(),
            series: vec![("resident".into(), bars.iter().map(|b| b.2).collect())],
        },
    });
    report.setup = vec![
        format!(
            "{connections} idle connections held open against each server for {}; `/proc/<pid>/status` and `smaps_rollup` read before and (every second) during, the largest sample kept",
            super::seconds(window)
        ),
        format!(
            "prefork: {processes} children, one idle connection each; its row is per process, shared pages split between the processes (PSS)"
        ),
        "8 MiB is Linux's default stack limit (`ulimit -s`), what CPython's threads get".into(),
    ];
    report.explanation = "A new thread maps its whole stack at once — 8 MiB of address space — but \
        the kernel backs a page with memory only when it is touched, and a thread blocked in `read` \
        has touched a few: resident memory grows by kilobytes. (The virtual growth exceeds the stack \
        because glibc also reserves address space for per-thread malloc arenas; the kernel keeps a \
        16 KiB stack of its own per thread, outside the process's resident memory.) An event-loop task is a future on the \
        heap plus the connection's read buffer. A process, even one forked from the same parent and \
        sharing its pages copy-on-write, brings its own page tables, stack, heap and kernel \
        structures: the most expensive way to hold a connection."
        .into();
    report.raw("held", &raw);
    Ok(report)
}
