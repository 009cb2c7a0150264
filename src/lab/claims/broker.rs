//! Past one machine: a server that offloads through a real broker (NATS JetStream) to
//! `clab worker --nats` processes. Each job crosses more hops than a process pool's — server
//! to broker, broker to worker, worker to broker, broker to server — and is stored before
//! it is acknowledged, so it costs more; in return the workers can be anywhere and many.
//! Whether offloading pays is a matter of size: the hop against the work.

use std::time::Duration;

use crate::gil::Variant;
use crate::lab::claims::experiment::{Experiment, Mark, Method, Report, Rules};
use crate::lab::model::eras::{Rule, Unit};
use crate::lab::model::outcome::{Chart, Figure, Series, Table};
use crate::lab::model::outcome::{Check, Verdict};
use crate::lab::running::measure;
use crate::lab::running::process::ChildServer;
use crate::lab::running::spec::ServerSpec;
use crate::lab::running::{Lab, LabError};
use crate::server::Model;

pub static EXPERIMENT: Experiment = Experiment {
    id: "broker",
    claim: "offloading through a broker to workers anywhere costs a hop far dearer than a process pool's, scales with workers, and pays only for requests large against that hop",
    essay: "Beyond the essays: their story ends at the process pool (Beazley); past one machine Python reaches for a broker and workers (Celery, Dask, Ray, NATS work queues)",
    rule: Rules {
        measures: "hop = µs a `fib 1` request takes beyond computing it on the connection's thread \
                   (one closed-loop client; server, broker and workers on one CPU). Scaling: four \
                   clients sending a ≈ 30 ms job (perf1's time scale) through the broker, throughput with \
                   two workers ÷ with one (everything on every server CPU).",
        marks: &[&DEARER, &SCALES],
        besides: "Pays only when large: two clients, the broker with two workers against threads \
                  under --gil new, requests from `fib 1` through `fib 20`, 25, 28, 30 and 32 to the \
                  ≈ 30 ms job — holds when the broker's rate ÷ the threads' is < 0.8 for the \
                  smallest and > 1.3 for the largest, does not hold when ≥ 1 for the smallest or \
                  < 1.1 for the largest. Skipped where no `nats-server` is installed.",
    },
    history: &[],
    era: None,
    pair: None,
    run: Method::Measure(run),
};

const DEARER: Mark = Mark {
    what: "the broker's hop is dearer than a process pool's, broker ÷ pool",
    rule: Rule::AtLeast {
        holds: 2.0,
        fails: 1.2,
    },
    unit: Unit::Times,
};
const SCALES: Mark = Mark {
    what: "throughput scales with workers, two ÷ one",
    rule: Rule::AtLeast {
        holds: 1.6,
        fails: 1.3,
    },
    unit: Unit::Times,
};
const SMALL_LOSES: f64 = 0.8;
const LARGE_WINS: f64 = 1.3;
const LARGE_NO_GAIN: f64 = 1.1;

/// A broker with its workers, all pinned to `cpus`; stopped (workers first) when dropped.
struct Broker {
    /// Declared first: dropped before the broker they pull from.
    workers: Vec<ChildServer>,
    nats: ChildServer,
}

impl Broker {
    /// `None` where no nats-server is installed.
    fn start(lab: &mut Lab, workers: usize, cpus: &[usize]) -> Result<Option<Broker>, LabError> {
        let Some(nats) = lab.start_broker(cpus)? else {
            return Ok(None);
        };
        let workers = (0..workers)
            .map(|_| lab.start_worker(&nats, 1, cpus))
            .collect::<Result<_, _>>()?;
        Ok(Some(Broker { workers, nats }))
    }

    /// A server offloading every computing request through this broker.
    fn server(&self, lab: &mut Lab, cpus: &[usize]) -> Result<ChildServer, LabError> {
        let spec = ServerSpec::new(Model::Procpool, Variant::New)
            .option("--offload-to", format!("nats://{}", self.nats.addr));
        let server = lab.serve(&spec, cpus)?;
        // The first job waits in the stream until a worker pulls: wait for it here.
        server.ask("fib 1")?;
        Ok(server)
    }

    fn stop(self) {
        let Broker { workers, nats } = self;
        workers.into_iter().for_each(ChildServer::stop);
        nats.stop();
    }
}

/// A closed-loop `clients` sending `request` for the window: requests/s.
fn rate(lab: &Lab, server: &ChildServer, clients: usize, request: &str) -> Result<f64, LabError> {
    let window = lab.profile.window();
    let class = Lab::class("load", clients, request, Duration::ZERO);
    measure::rate(lab, server, window, vec![class], "load")
}

/// The `fib 1` rate on the connection's thread, through a process pool, and through the
/// broker to one worker — everything on the one server CPU.
struct Hops {
    inline: f64,
    procpool: f64,
    broker: f64,
}

impl Hops {
    fn measure(lab: &mut Lab, broker: &Broker) -> Result<Hops, LabError> {
        let one = lab.placement.server_one.clone();
        let on_one = |lab: &mut Lab, spec: ServerSpec| {
            let server = lab.serve(&spec, &one)?;
            let rate = measure::rapid_rate(lab, &server);
            server.stop();
            rate
        };
        lab.step("broker: the hop, inline and through a process pool")?;
        let inline = on_one(lab, ServerSpec::new(Model::Threads, Variant::New))?;
        let procpool = on_one(
            lab,
            ServerSpec::new(Model::Procpool, Variant::New).workers(1),
        )?;
        lab.step("broker: the hop through NATS")?;
        let server = broker.server(lab, &one)?;
        let through = measure::rapid_rate(lab, &server)?;
        server.stop();
        Ok(Hops {
            inline,
            procpool,
            broker: through,
        })
    }

    fn hop_us(&self, rate: f64) -> f64 {
        1e6 / rate - 1e6 / self.inline
    }
}

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let one = lab.placement.server_one.clone();
    let all = lab.placement.server_all.clone();
    let Some(single) = Broker::start(lab, 1, &one)? else {
        return Ok(skipped());
    };
    let hops = Hops::measure(lab, &single)?;
    single.stop();
    let job = lab.setups.job.request();
    // Throughput against workers, everything on every server CPU.
    let mut scaling = Vec::new();
    for workers in [1, 2, 4] {
        lab.step(&format!("broker: {workers} worker(s), four clients"))?;
        let broker = Broker::start(lab, workers, &all)?.expect("nats-server ran a moment ago");
        let server = broker.server(lab, &all)?;
        scaling.push((workers, rate(lab, &server, 4, &job)?));
        server.stop();
        broker.stop();
    }
    // Where the hop pays: two clients, the broker with two workers against threads under
    // the GIL, by request size.
    let mut sizes: Vec<u32> = vec![1, 20, 25, 28, 30, 32, lab.setups.job.n];
    sizes.sort_unstable();
    sizes.dedup();
    let broker = Broker::start(lab, 2, &all)?.expect("nats-server ran a moment ago");
    let through = broker.server(lab, &all)?;
    let threads = lab.serve(&ServerSpec::new(Model::Threads, Variant::New), &all)?;
    let mut gains = Vec::new();
    for n in sizes {
        let size = format!("fib {n}");
        lab.step(&format!("broker: `{size}`, two clients"))?;
        let inline = rate(lab, &threads, 2, &size)?;
        let offloaded = rate(lab, &through, 2, &size)?;
        gains.push(Size {
            n,
            inline,
            offloaded,
        });
    }
    threads.stop();
    through.stop();
    broker.stop();
    Ok(report(lab, &hops, &scaling, &gains))
}

/// Two clients' rate for `fib n`: threads under the GIL, and the broker with two workers.
#[derive(Debug, serde::Serialize)]
struct Size {
    n: u32,
    inline: f64,
    offloaded: f64,
}

impl Size {
    /// The broker's rate as a share of the threads'.
    fn gain(&self) -> f64 {
        self.offloaded / self.inline
    }
}

fn skipped() -> Report {
    Report {
        verdict: Some(Verdict::Skipped),
        summary: "skipped: no nats-server is installed here (`apt-get install nats-server`)".into(),
        checks: vec![Check::new(
            "a NATS broker to offload through",
            Verdict::Skipped,
            "no nats-server on PATH or in /usr/sbin",
        )],
        ..Report::default()
    }
}

fn report(lab: &Lab, hops: &Hops, scaling: &[(usize, f64)], gains: &[Size]) -> Report {
    let (procpool_us, broker_us) = (hops.hop_us(hops.procpool), hops.hop_us(hops.broker));
    let dearer = broker_us / procpool_us;
    let rate_with = |workers| {
        scaling
            .iter()
            .find(|(w, _)| *w == workers)
            .map_or(0.0, |(_, r)| *r)
    };
    let scales = rate_with(2) / rate_with(1);
    let (first, last) = (&gains[0], &gains[gains.len() - 1]);
    let (smallest, largest) = (first.gain(), last.gain());
    let pays = if smallest >= 1.0 || largest < LARGE_NO_GAIN {
        Verdict::DoesNotHold
    } else if smallest < SMALL_LOSES && largest > LARGE_WINS {
        Verdict::Holds
    } else {
        Verdict::Inconclusive
    };
    let crossover = gains
        .iter()
        .find(|size| size.gain() >= 1.0)
        .map_or("none of the sizes measured".into(), |size| {
            format!("`fib {}`", size.n)
        });
    let checks = vec![
        Check::new(
            "the broker's hop is dearer than the process pool's",
            DEARER.judge(dearer),
            format!("{broker_us:.0} µs against {procpool_us:.0} µs a request: ×{dearer:.1}"),
        ),
        Check::new(
            "throughput scales with workers",
            SCALES.judge(scales),
            format!(
                "{:.1} → {:.1} requests/s from one worker to two: ×{scales:.2}",
                rate_with(1),
                rate_with(2)
            ),
        ),
        Check::new(
            "offloading pays only for requests large against the hop",
            pays,
            format!(
                "the broker's rate ÷ the threads': {smallest:.2} for `fib {}`, {largest:.2} for `fib {}`; it first wins at {crossover}",
                first.n, last.n
            ),
        ),
    ];
    let mut hop_table = Table::new(
        "A `fib 1` request's hop, one client, everything on one CPU",
        &["where the work runs", "requests/s", "µs beyond inline"],
    );
    for (label, rate) in [
        (
            "on the connection's thread (threads --gil new)",
            hops.inline,
        ),
        ("a process pool of one (procpool --gil new)", hops.procpool),
        ("NATS JetStream, one clab worker", hops.broker),
    ] {
        hop_table.row(vec![
            label.into(),
            format!("{rate:.0}"),
            format!("{:.0}", hops.hop_us(rate)),
        ]);
    }
    let mut scaling_table = Table::new(
        format!(
            "Four clients sending `{}` through the broker",
            lab.setups.job.request()
        ),
        &["workers", "requests/s", "against one worker"],
    );
    for (workers, rate) in scaling {
        scaling_table.row(vec![
            workers.to_string(),
            format!("{rate:.1}"),
            format!("×{:.2}", rate / rate_with(1)),
        ]);
    }
    let mut size_table = Table::new(
        "Two clients: threads under the GIL against the broker with two workers",
        &[
            "request",
            "threads --gil new (req/s)",
            "broker (req/s)",
            "broker ÷ threads",
        ],
    );
    for size in gains {
        size_table.row(vec![
            format!("`fib {}`", size.n),
            format!("{:.0}", size.inline),
            format!("{:.0}", size.offloaded),
            format!("{:.2}", size.gain()),
        ]);
    }
    let points = |pick: fn(&Size) -> f64| {
        gains
            .iter()
            .map(|size| (f64::from(size.n), pick(size)))
            .collect()
    };
    let mut report = Report {
        checks,
        summary: format!(
            "a request's hop costs {broker_us:.0} µs through NATS against {procpool_us:.0} µs through a process pool (×{dearer:.1}); two workers give ×{scales:.2} one's throughput; offloading first wins at {crossover}"
        ),
        setup: vec![
            format!(
                "nats-server 2.9 with JetStream on loopback, a work-queue stream on disk, `clab worker --nats --concurrency 1` processes; servers are `clab serve --model procpool --offload-to nats://…`; each load {}",
                crate::lab::words::seconds(lab.profile.window())
            ),
            format!(
                "the hop: server, broker and worker on CPU {}, the load generator on CPU {}",
                crate::lab::words::list(&lab.placement.server_one),
                crate::lab::words::list(&lab.placement.load)
            ),
            format!(
                "scaling and sizes: everything on CPUs {}; the sizes run from `fib 1` to the ≈ 30 ms job ({}), each step of n ×1.6 the work",
                crate::lab::words::list(&lab.placement.server_all),
                lab.setups.job.show()
            ),
        ],
        tables: vec![hop_table, scaling_table, size_table],
        figures: vec![Figure::new(
            "sizes",
            "Two clients by request size: threads under the GIL against the broker",
            ("n of `fib n` (each step ×1.6 the work)", "requests/s"),
            Chart::Lines {
                series: vec![
                    Series::new("threads --gil new", points(|size| size.inline)),
                    Series::new("broker, two workers", points(|size| size.offloaded)),
                ],
                markers: Vec::new(),
                log_x: false,
                log_y: true,
            },
        )],
        explanation: "A job through the broker is published, stored and acknowledged, pulled by \
            a worker, computed, published back to the server's own subject and acknowledged \
            again: four crossings of the loopback and a write to the stream's file, against a \
            process pool's two pipe writes. For a tiny request that is all cost, and the \
            threads answering on the connection win by far. For a request of tens of \
            milliseconds the hop is noise, and two workers compute two requests at once where \
            threads under the GIL take turns: the broker wins, and would go on winning with \
            workers on other machines — the only change is the URL."
            .into(),
        ..Report::default()
    };
    report.raw(
        "hops_per_s",
        serde_json::json!({"inline": hops.inline, "procpool": hops.procpool, "broker": hops.broker}),
    );
    report.raw("scaling_per_s", scaling);
    report.raw("sizes_per_s", gains);
    report
}
