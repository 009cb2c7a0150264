//! Offloading through a real broker: NATS with JetStream. A server publishes each job to a
//! work-queue stream; `clab worker --nats` processes — any number, on any machine — pull jobs,
//! compute them, publish each reply to the submitting server's own reply subject, and then
//! acknowledge the job.
//!
//! Delivery is at least once. A worker that dies mid-job never acknowledges it, so JetStream
//! hands it to another worker after the ack wait; a worker replies before it acknowledges, so
//! a reply can arrive twice, and the server keeps the first per job. A job with no reply by
//! its deadline is answered `ERR job timed out`; one the broker would not take, `ERR broker
//! unavailable` — a client always gets a line.

mod executor;
mod worker;

pub use executor::BrokerPool;
pub use worker::{WorkerOptions, run_worker};

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_nats::jetstream;

/// The stream every server publishes jobs to and every worker pulls from.
pub const STREAM: &str = "CLAB_JOBS";
pub const SUBJECT: &str = "clab.jobs";
/// The durable consumer the workers share: each job goes to one of them.
pub const CONSUMER: &str = "clab-workers";
/// The job's id, unique per submitting server.
const JOB_HEADER: &str = "Clab-Job";
/// The core NATS subject the submitting server listens for replies on.
const REPLY_HEADER: &str = "Clab-Reply-To";
/// At most this many jobs wait in the stream; past it the broker refuses new ones.
const MAX_QUEUED: i64 = 10_000;
/// A job not acknowledged this long after delivery goes to another worker. Workers computing
/// a long job say they are still at it every half of this.
pub const ACK_WAIT: Duration = Duration::from_secs(5);

/// `nats://HOST:PORT`, checked when parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    host: String,
    port: u16,
}

impl FromStr for BrokerUrl {
    type Err = BrokerError;

    fn from_str(text: &str) -> Result<BrokerUrl, BrokerError> {
        let bad = || BrokerError::BadUrl(text.to_owned());
        let address = text.strip_prefix("nats://").ok_or_else(bad)?;
        let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let valid_host = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
        match port.parse::<u16>() {
            Ok(port) if valid_host && port != 0 => Ok(BrokerUrl {
                host: host.to_owned(),
                port,
            }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "nats://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "nats://{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("{0:?} is not a broker URL: expected nats://HOST:PORT")]
    BadUrl(String),
    #[error("cannot reach the broker at {0}: {1}")]
    Unreachable(BrokerUrl, String),
    #[error("the broker at {0} has no usable job stream: {1}")]
    Stream(BrokerUrl, String),
    #[error("cannot start the broker's client: {0}")]
    Start(String),
}

/// Connects to `url`, failing after `timeout` rather than retrying.
async fn connect(
    url: &BrokerUrl,
    name: &str,
    timeout: Duration,
) -> Result<async_nats::Client, BrokerError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(timeout)
        .connect(url.to_string())
        .await
        .map_err(|e| BrokerError::Unreachable(url.clone(), e.to_string()))
}

/// The job stream, created if missing: a work queue (a job leaves the stream when acked),
/// bounded, on disk so that jobs outlive a broker restart.
async fn job_stream(
    url: &BrokerUrl,
    context: &jetstream::Context,
) -> Result<jetstream::stream::Stream, BrokerError> {
    context
        .get_or_create_stream(jetstream::stream::Config {
            name: STREAM.into(),
            subjects: vec![SUBJECT.into()],
            retention: jetstream::stream::RetentionPolicy::WorkQueue,
            max_messages: MAX_QUEUED,
            discard: jetstream::stream::DiscardPolicy::New,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| BrokerError::Stream(url.clone(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_are_nats_host_and_port() {
        let url: BrokerUrl = "nats://127.0.0.1:4222".parse().unwrap();
        assert_eq!(url.to_string(), "nats://127.0.0.1:4222");
        let url: BrokerUrl = "nats://[::1]:4222".parse().unwrap();
        assert_eq!(url.to_string(), "nats://[::1]:4222");
        assert!("nats://broker.example:7".parse::<BrokerUrl>().is_ok());
        for bad in [
            "127.0.0.1:4222",
            "http://127.0.0.1:4222",
            "nats://127.0.0.1",
            "nats://:4222",
            "nats://host:0",
            "nats://host:99999",
            "nats://ho st:4222",
        ] {
            assert_eq!(
                bad.parse::<BrokerUrl>(),
                Err(BrokerError::BadUrl(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            BrokerError::BadUrl("x".into()).to_string(),
            "\"x\" is not a broker URL: expected nats://HOST:PORT"
        );
    }
}
