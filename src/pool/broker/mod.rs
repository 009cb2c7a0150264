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
//!
//! Past one machine the broker is reached over TLS with credentials ([`access`]), and a
//! worker treats each job as untrusted input: what a server would refuse, it answers `ERR`
//! and acknowledges, and it replies only to a server's reply subject.

mod access;
mod executor;
mod worker;

pub use access::{Access, Broker, BrokerUrl, Credentials, Secret, Transport};
pub use executor::BrokerPool;
pub use worker::{WorkerOptions, run_worker};

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream;

/// Where `clab serve` and `clab worker` find credentials when neither the URL nor an option
/// gives any: a token, or a user and password (the password alone for `--nats-user`).
pub const TOKEN_VARIABLE: &str = "CLAB_NATS_TOKEN";
pub const USER_VARIABLE: &str = "CLAB_NATS_USER";
pub const PASSWORD_VARIABLE: &str = "CLAB_NATS_PASSWORD";
pub const CREDENTIAL_VARIABLES: [&str; 3] = [TOKEN_VARIABLE, USER_VARIABLE, PASSWORD_VARIABLE];

/// The stream every server publishes jobs to and every worker pulls from.
pub const STREAM: &str = "CLAB_JOBS";
pub const SUBJECT: &str = "clab.jobs";
/// The durable consumer the workers share: each job goes to one of them.
pub const CONSUMER: &str = "clab-workers";
/// The job's id, unique per submitting server.
const JOB_HEADER: &str = "Clab-Job";
/// The core NATS subject the submitting server listens for replies on.
const REPLY_HEADER: &str = "Clab-Reply-To";
/// Every server's reply subject starts with this, so a broker can let workers publish there
/// and nowhere else, and a worker can refuse a job that names another subject.
pub const REPLY_PREFIX: &str = "clab.reply.";
/// At most this many jobs wait in the stream; past it the broker refuses new ones.
const MAX_QUEUED: i64 = 10_000;
/// A job not acknowledged this long after delivery goes to another worker. Workers computing
/// a long job say they are still at it every half of this.
pub const ACK_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("{0:?} is not a broker URL: expected nats://HOST:PORT or tls://HOST:PORT")]
    BadUrl(String),
    #[error(
        "credentials for the broker at {0} are given twice, in its URL and by an option or the environment: give them one way"
    )]
    CredentialsTwice(BrokerUrl),
    #[error(
        "no password for the broker user {0:?}: give it in a file (--nats-password-file) or in $CLAB_NATS_PASSWORD"
    )]
    NoPassword(String),
    #[error("cannot read the NATS credentials file {path}: {reason}", path = .0.display(), reason = .1)]
    CredentialsFile(PathBuf, String),
    #[error("cannot reach the broker at {0}: {1}")]
    Unreachable(BrokerUrl, String),
    #[error("the broker at {0} refused these credentials")]
    Refused(BrokerUrl),
    #[error("no TLS connection with the broker at {0}: {1} (a private CA: --nats-ca FILE)")]
    Tls(BrokerUrl, String),
    #[error("the broker at {0} has no usable job stream: {1}")]
    Stream(BrokerUrl, String),
    #[error("cannot start the broker's client: {0}")]
    Start(String),
}

/// The job stream, created by a server if missing: a work queue (a job leaves the stream
/// when acked), bounded, on disk so that jobs outlive a broker restart.
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

/// How often a worker looks again for a job stream no server has made yet.
const STREAM_POLL: Duration = Duration::from_millis(250);

/// The job stream once a server has made it. Workers only read it, so a broker can deny
/// them the right to create, change or delete it; until it exists they wait, saying so once.
async fn existing_job_stream(
    url: &BrokerUrl,
    context: &jetstream::Context,
) -> Result<jetstream::stream::Stream, BrokerError> {
    use async_nats::jetstream::ErrorCode;
    use async_nats::jetstream::context::GetStreamErrorKind;
    let mut told = false;
    loop {
        match context.get_stream(STREAM).await {
            Ok(stream) => return Ok(stream),
            Err(error)
                if matches!(error.kind(), GetStreamErrorKind::JetStream(ref e)
                    if e.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
            {
                if !told {
                    tracing::info!(%url, "no job stream yet: waiting for a server to make it");
                    told = true;
                }
                tokio::time::sleep(STREAM_POLL).await;
            }
            Err(error) => return Err(BrokerError::Stream(url.clone(), error.to_string())),
        }
    }
}
