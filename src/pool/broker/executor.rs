//! The server's side of the broker: an [`Executor`] whose jobs go out through JetStream and
//! whose replies come back on a subject of its own. One thread runs the NATS client; callers
//! on any thread or task hand it jobs without blocking.

use std::collections::HashMap;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures_util::StreamExt;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::{Broker, BrokerError, JOB_HEADER, REPLY_HEADER, REPLY_PREFIX, SUBJECT, job_stream};
use crate::pool::future::{Completer, job};
use crate::pool::{Executor, JobFuture, PoolError, Task};
use crate::protocol::{Reply, Request};
use crate::sync::lock;

/// How long the server waits for the broker when it starts.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often jobs past their deadline are answered.
const SWEEP: Duration = Duration::from_millis(100);

/// Jobs offloaded to whichever `clab worker --nats` takes them.
#[derive(Debug)]
pub struct BrokerPool {
    /// Closed on shutdown: the client thread then answers what is pending and ends.
    jobs: Mutex<Option<UnboundedSender<Task>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A job published and not yet answered.
struct Pending {
    request: Request,
    completer: Completer,
    deadline: Instant,
}

impl BrokerPool {
    /// Connects to `broker` (failing at once if it cannot, or if it refuses the
    /// credentials), makes sure the job stream exists, and starts the client thread. A job
    /// with no reply within `job_timeout` is answered `ERR job timed out`.
    pub fn connect(broker: &Broker, job_timeout: Duration) -> Result<BrokerPool, BrokerError> {
        let (jobs, queued) = unbounded_channel();
        let (started, outcome) = std::sync::mpsc::channel();
        let thread_broker = broker.clone();
        let thread = std::thread::Builder::new()
            .name("clab-broker".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = started.send(Err(BrokerError::Start(error.to_string())));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match Client::start(&thread_broker, job_timeout).await {
                        Ok(client) => {
                            let _ = started.send(Ok(()));
                            client.run(queued).await;
                        }
                        Err(error) => {
                            let _ = started.send(Err(error));
                        }
                    }
                });
            })
            .map_err(|e| BrokerError::Start(e.to_string()))?;
        let connected = outcome
            .recv()
            .unwrap_or_else(|_| Err(BrokerError::Start("its thread died".into())));
        if let Err(error) = connected {
            let _ = thread.join();
            return Err(error);
        }
        tracing::info!(url = %broker, tls = broker.tls(), "offloading through the broker");
        Ok(BrokerPool {
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
        })
    }
}

impl Executor for BrokerPool {
    fn submit(&self, request: Request) -> Result<JobFuture, PoolError> {
        let jobs = lock(&self.jobs);
        let jobs = jobs.as_ref().ok_or(PoolError::ShutDown)?;
        let (future, completer) = job();
        jobs.send(Task { request, completer })
            .map_err(|_| PoolError::ShutDown)?;
        Ok(future)
    }

    fn shutdown(&self, wait: bool) {
        lock(&self.jobs).take();
        if wait && let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for BrokerPool {
    fn drop(&mut self) {
        self.shutdown(true);
    }
}

/// The NATS side, on the client thread.
struct Client {
    jetstream: jetstream::Context,
    /// The core NATS subject workers send this server's replies to.
    reply_to: String,
    replies: async_nats::Subscriber,
    job_timeout: Duration,
}

impl Client {
    async fn start(broker: &Broker, job_timeout: Duration) -> Result<Client, BrokerError> {
        let url = &broker.url;
        let client = broker.connect("clab serve", CONNECT_TIMEOUT).await?;
        let jetstream = jetstream::new(client.clone());
        job_stream(url, &jetstream).await?;
        let reply_to = format!("{REPLY_PREFIX}{}", nuid::next());
        let replies = client
            .subscribe(reply_to.clone())
            .await
            .map_err(|e| BrokerError::Unreachable(url.clone(), e.to_string()))?;
        Ok(Client {
            jetstream,
            reply_to,
            replies,
            job_timeout,
        })
    }

    /// Publishes what is submitted and answers it from the replies, until the pool is shut
    /// down and every job it had taken has been answered.
    async fn run(mut self, mut queued: UnboundedReceiver<Task>) {
        let mut pending: HashMap<u64, Pending> = HashMap::new();
        let (refused, mut refusals) = unbounded_channel::<u64>();
        let mut next_id = 0u64;
        let mut sweep = tokio::time::interval(SWEEP);
        let mut open = true;
        while open || !pending.is_empty() {
            tokio::select! {
                task = queued.recv(), if open => match task {
                    Some(Task { request, completer }) => {
                        if !completer.start() {
                            continue; // cancelled while it waited
                        }
                        next_id += 1;
                        tokio::spawn(publish(
                            self.jetstream.clone(),
                            (next_id, request.to_string()),
                            self.reply_to.clone(),
                            refused.clone(),
                        ));
                        let deadline = Instant::now() + self.job_timeout;
                        pending.insert(next_id, Pending { request, completer, deadline });
                    }
                    None => open = false,
                },
                Some(message) = self.replies.next() => {
                    // A second reply to a redelivered job, or one past its deadline, finds
                    // nothing pending: dropped.
                    if let Some(job) = job_id(&message).and_then(|id| pending.remove(&id)) {
                        let line = String::from_utf8_lossy(&message.payload);
                        job.completer.finish(Ok(Reply::for_request(&job.request, &line)));
                    }
                }
                Some(id) = refusals.recv() => {
                    if let Some(job) = pending.remove(&id) {
                        job.completer.finish(Ok(Reply::Error("broker unavailable".into())));
                    }
                }
                _ = sweep.tick() => {
                    let now = Instant::now();
                    for (_, job) in pending.extract_if(|_, job| job.deadline <= now) {
                        job.completer.finish(Ok(Reply::Error("job timed out".into())));
                    }
                }
            }
        }
    }
}

/// Publishes one job and waits for the stream to store it; a job it did not store is
/// reported on `refused`.
async fn publish(
    jetstream: jetstream::Context,
    (id, line): (u64, String),
    reply_to: String,
    refused: UnboundedSender<u64>,
) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(JOB_HEADER, id.to_string().as_str());
    headers.insert(REPLY_HEADER, reply_to.as_str());
    let stored = match jetstream
        .publish_with_headers(SUBJECT, headers, line.into())
        .await
    {
        Ok(ack) => ack.await.map(drop).map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = stored {
        tracing::warn!(id, %error, "the broker did not take a job");
        let _ = refused.send(id);
    }
}

/// The job id a reply carries.
fn job_id(message: &async_nats::Message) -> Option<u64> {
    message
        .headers
        .as_ref()?
        .get(JOB_HEADER)?
        .as_str()
        .parse()
        .ok()
}
