//! `clab worker --nats URL`: pulls jobs from the broker's work queue and computes them on a
//! pool of threads — one interpreter's, under its GIL if it has one — replying to each job's
//! server and then acknowledging the job. Out of the broker's reach it says so and tries
//! again, waiting longer each time (up to 5 s).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use tokio::sync::Semaphore;

use super::{
    ACK_WAIT, BrokerError, BrokerUrl, CONSUMER, JOB_HEADER, REPLY_HEADER, connect, job_stream,
};
use crate::gil::GilConfig;
use crate::pool::{Executor, ThreadPool};
use crate::protocol::{Reply, Request};

/// How long one attempt to reach the broker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub url: BrokerUrl,
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
    runtime.block_on(async {
        tokio::pin!(stop);
        let mut retry = FIRST_RETRY;
        loop {
            let session = pull(&options, concurrency, &threads, &permits);
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
    Ok(())
}

/// One session with the broker: connect, then pull jobs as threads come free, until the
/// connection's stream of jobs ends or fails.
async fn pull(
    options: &WorkerOptions,
    concurrency: usize,
    threads: &Arc<ThreadPool>,
    permits: &Arc<Semaphore>,
) -> Result<(), BrokerError> {
    let url = &options.url;
    let client = connect(url, "clab worker", CONNECT_TIMEOUT).await?;
    let stream = job_stream(url, &jetstream::new(client.clone())).await?;
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
    tracing::info!(%url, concurrency, "pulling jobs");
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
        tokio::spawn(async move {
            answer(job, &client, &threads, max_n).await;
            drop(permit);
        });
    }
}

/// Computes one job, replies to its server, then acknowledges it; a malformed job is
/// terminated so it is not delivered again.
async fn answer(
    job: jetstream::Message,
    client: &async_nats::Client,
    threads: &ThreadPool,
    max_n: u32,
) {
    let header = |name| {
        job.headers
            .as_ref()
            .and_then(|headers| headers.get(name))
            .map(|value| value.as_str().to_owned())
    };
    let (Some(id), Some(reply_to)) = (header(JOB_HEADER), header(REPLY_HEADER)) else {
        tracing::warn!("a job without its id or reply subject: terminated");
        let _ = job.ack_with(AckKind::Term).await;
        return;
    };
    let reply = match Request::parse(&job.payload, max_n) {
        Ok(request) => compute(&job, threads, request).await,
        Err(error) => Reply::Error(error.to_string()),
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
