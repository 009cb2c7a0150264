//! `clab worker --nats URL`: pulls jobs from the broker's work queue and computes them on a
//! pool of threads — one interpreter's, under its GIL if it has one — replying to each job's
//! server and then acknowledging the job. Out of the broker's reach, or refused by it, it
//! says so and tries again, waiting longer each time (up to 5 s).
//!
//! Anyone allowed to publish on the queue can hand a worker a job, so each is checked as a
//! server checks a request: a job the protocol or the worker's `--max-n` refuses, one longer
//! than a request line, or one that is not `fib`/`spin` is answered `ERR` and acknowledged —
//! neither computed nor delivered again. A job without a job id or whose reply subject is not
//! a server's cannot be answered safely: it is terminated. `stats` through the queue is
//! answered with the worker's own counters.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use tokio::sync::Semaphore;

use super::{
    ACK_WAIT, Broker, BrokerError, CONSUMER, JOB_HEADER, REPLY_HEADER, REPLY_PREFIX,
    existing_job_stream,
};
use crate::gil::GilConfig;
use crate::pool::{Executor, ThreadPool};
use crate::protocol::{MAX_LINE, Reply, Request};

/// How long one attempt to reach the broker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub broker: Broker,
    /// Jobs computed at once: the threads of the worker's interpreter.
    pub concurrency: usize,
    /// The worker's interpreter lock, shared by its threads.
    pub gil: GilConfig,
    pub max_n: u32,
}

/// Pulls and computes jobs until `stop` completes; then finishes the jobs it holds.
pub fn run_worker(
    options: WorkerOptions,
    stop: impl Future<Output = ()>,
) -> Result<(), BrokerError> {
    let concurrency = options.concurrency.max(1);
    let threads = ThreadPool::new(concurrency, options.gil.lock())
        .map_err(|e| BrokerError::Start(e.to_string()))?;
    let threads = Arc::new(threads);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BrokerError::Start(e.to_string()))?;
    let permits = Arc::new(Semaphore::new(concurrency));
    let tally = Arc::new(Tally::default());
    runtime.block_on(async {
        tokio::pin!(stop);
        let mut retry = FIRST_RETRY;
        loop {
            let session = pull(&options, concurrency, &threads, &permits, &tally);
            tokio::select! {
                () = &mut stop => break,
                ended = session => match ended {
                    Ok(()) => retry = FIRST_RETRY,
                    Err(error) => {
                        tracing::warn!("{error}; trying again in {retry:?}");
                        tokio::select! {
                            () = &mut stop => break,
                            () = tokio::time::sleep(retry) => {}
                        }
                        retry = (retry * 2).min(LAST_RETRY);
                    }
                },
            }
        }
        // The jobs in hand: wait until every permit is back.
        let _all = permits.acquire_many(concurrency as u32).await;
    });
    threads.shutdown(true);
    tracing::info!(
        computed = tally.computed.load(Ordering::Relaxed),
        refused = tally.refused.load(Ordering::Relaxed),
        "stopped"
    );
    Ok(())
}

/// What a worker has done, for its log and its `stats`.
#[derive(Debug, Default)]
struct Tally {
    computed: AtomicU64,
    /// Jobs answered `ERR` or terminated without being computed.
    refused: AtomicU64,
}

impl Tally {
    fn refuse(&self, id: &str, why: &str) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(job = %truncated(id), refused, "refused a job: {why}");
    }

    fn json(&self) -> String {
        serde_json::json!({
            "worker": true,
            "computed": self.computed.load(Ordering::Relaxed),
            "refused": self.refused.load(Ordering::Relaxed),
        })
        .to_string()
    }
}

/// One session with the broker: connect, then pull jobs as threads come free, until the
/// connection's stream of jobs ends or fails.
async fn pull(
    options: &WorkerOptions,
    concurrency: usize,
    threads: &Arc<ThreadPool>,
    permits: &Arc<Semaphore>,
    tally: &Arc<Tally>,
) -> Result<(), BrokerError> {
    let url = &options.broker.url;
    let client = options
        .broker
        .connect("clab worker", CONNECT_TIMEOUT)
        .await?;
    let stream = existing_job_stream(url, &jetstream::new(client.clone())).await?;
    let lost = |e: &dyn std::fmt::Display| BrokerError::Unreachable(url.clone(), e.to_string());
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            CONSUMER,
            jetstream::consumer::pull::Config {
                durable_name: Some(CONSUMER.into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| BrokerError::Stream(url.clone(), e.to_string()))?;
    let mut jobs = consumer
        .stream()
        .max_messages_per_batch(concurrency)
        .heartbeat(Duration::from_secs(2))
        .expires(Duration::from_secs(10))
        .messages()
        .await
        .map_err(|e| lost(&e))?;
    tracing::info!(%url, tls = options.broker.tls(), concurrency, "pulling jobs");
    loop {
        let permit = Arc::clone(permits)
            .acquire_owned()
            .await
            .expect("the permits are never closed");
        let job = match jobs.next().await {
            Some(Ok(job)) => job,
            Some(Err(error)) => return Err(lost(&error)),
            None => return Err(lost(&"the broker closed the job stream")),
        };
        let (client, threads, max_n) = (client.clone(), Arc::clone(threads), options.max_n);
        let tally = Arc::clone(tally);
        tokio::spawn(async move {
            answer(job, &client, &threads, max_n, &tally).await;
            drop(permit);
        });
    }
}

/// Checks one job, computes it if it is one, replies to its server, then acknowledges it.
async fn answer(
    job: jetstream::Message,
    client: &async_nats::Client,
    threads: &ThreadPool,
    max_n: u32,
    tally: &Tally,
) {
    let header = |name| {
        job.headers
            .as_ref()
            .and_then(|headers| headers.get(name))
            .map(|value| value.as_str().to_owned())
    };
    let id = header(JOB_HEADER).unwrap_or_default();
    let reply_to = header(REPLY_HEADER).unwrap_or_default();
    if let Err(why) = addressed(&id, &reply_to) {
        // No answer can be sent safely: terminated, so it is not delivered again.
        tally.refuse(&id, &why);
        let _ = job.ack_with(AckKind::Term).await;
        return;
    }
    let reply = match checked(&job.payload, max_n) {
        Ok(request @ (Request::Fib(_) | Request::Spin(_))) => {
            let reply = compute(&job, threads, request).await;
            tally.computed.fetch_add(1, Ordering::Relaxed);
            reply
        }
        Ok(Request::Stats) => Reply::Json(tally.json()),
        Ok(_) => {
            let why = "a worker computes fib and spin only";
            tally.refuse(&id, why);
            Reply::Error(why.into())
        }
        Err(why) => {
            tally.refuse(&id, &why);
            Reply::Error(why)
        }
    };
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(JOB_HEADER, id.as_str());
    let sent = client
        .publish_with_headers(reply_to, headers, reply.to_string().into())
        .await;
    // Acknowledged only once the reply is on its way: a worker killed in between leaves the
    // job to be redelivered, and the server drops the second reply.
    match sent {
        Ok(()) => {
            if let Err(error) = job.ack().await {
                tracing::warn!(%id, %error, "a job's acknowledgement failed; it will be redelivered");
            }
        }
        Err(error) => {
            tracing::warn!(%id, %error, "a reply could not be sent; the job will be redelivered")
        }
    }
}

/// Whether a job can be answered: a server's job id (a number) and a reply subject under
/// [`REPLY_PREFIX`] — never a wildcard, and never a subject of the broker's own API, which a
/// crafted job could otherwise have a worker publish to.
fn addressed(id: &str, reply_to: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err("no job id, or not a number".into());
    }
    let valid = reply_to.len() <= 128
        && reply_to.strip_prefix(REPLY_PREFIX).is_some_and(|rest| {
            !rest.is_empty()
                && rest.split('.').all(|token| {
                    !token.is_empty()
                        && token
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
        });
    if !valid {
        return Err(format!(
            "its reply subject {:?} is not a server's ({REPLY_PREFIX}…)",
            truncated(reply_to)
        ));
    }
    Ok(())
}

/// The job's request, parsed as a server parses a request line, under the worker's limit.
fn checked(payload: &[u8], max_n: u32) -> Result<Request, String> {
    if payload.len() > MAX_LINE {
        return Err(format!("job too long: more than {MAX_LINE} bytes"));
    }
    Request::parse(payload, max_n).map_err(|error| error.to_string())
}

/// At most 40 characters of untrusted text, for a log line.
fn truncated(text: &str) -> &str {
    text.char_indices()
        .nth(40)
        .map_or(text, |(end, _)| &text[..end])
}

/// Runs `request` on the worker's threads, telling the broker every half ack wait that the
/// job is still in hand, so a long job is not handed to another worker.
async fn compute(job: &jetstream::Message, threads: &ThreadPool, request: Request) -> Reply {
    let outcome = match threads.submit(request) {
        Ok(future) => future,
        Err(error) => return Reply::Error(error.to_string()),
    };
    tokio::pin!(outcome);
    let mut still_working = tokio::time::interval(ACK_WAIT / 2);
    still_working.tick().await;
    loop {
        tokio::select! {
            outcome = &mut outcome => {
                return outcome.unwrap_or_else(|error| Reply::Error(error.to_string()));
            }
            _ = still_working.tick() => {
                let _ = job.ack_with(AckKind::Progress).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_servers_job_id_and_reply_subject_are_answered() {
        assert_eq!(addressed("17", "clab.reply.AbC-d_9"), Ok(()));
        for (id, reply_to) in [
            ("", "clab.reply.x"),
            ("x1", "clab.reply.x"),
            ("123456789012345678901", "clab.reply.x"),
            ("1", ""),
            ("1", "clab.reply."),
            ("1", "clab.reply.>"),
            ("1", "clab.reply.*"),
            ("1", "clab.reply.a b"),
            ("1", "clab.reply.a..b"),
            ("1", "$JS.API.STREAM.DELETE.CLAB_JOBS"),
            ("1", "clab.jobs"),
        ] {
            assert!(addressed(id, reply_to).is_err(), "{id:?} {reply_to:?}");
        }
        assert!(addressed("1", &format!("clab.reply.{}", "a".repeat(200))).is_err());
    }

    #[test]
    fn a_job_is_parsed_as_a_request_under_the_workers_limit() {
        assert_eq!(checked(b"fib 20", 45), Ok(Request::Fib(20)));
        assert_eq!(
            checked(b"fib 99", 45),
            Err("n must be an integer from 0 to 45".into())
        );
        assert_eq!(
            checked(b"garbage", 45),
            Err("unknown command \"garbage\"".into())
        );
        assert_eq!(
            checked(&[b'1'; MAX_LINE + 1], 45),
            Err(format!("job too long: more than {MAX_LINE} bytes"))
        );
    }

    #[test]
    fn untrusted_text_is_cut_short_in_the_log() {
        assert_eq!(truncated("short"), "short");
        assert_eq!(truncated(&"é".repeat(100)).chars().count(), 40);
    }
}
