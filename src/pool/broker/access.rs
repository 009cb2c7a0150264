//! How clab reaches a broker: where (`nats://HOST:PORT`, or `tls://HOST:PORT` for TLS), as
//! whom (a user and password, a token, or an NATS credentials file), and which certificate
//! authority it trusts. Secrets are kept in [`Secret`], which neither `Display` nor `Debug`
//! shows, so they stay out of logs and error lines; a URL is always shown without them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use async_nats::ConnectErrorKind;
use percent_encoding::percent_decode_str;

use super::BrokerError;

/// Plain TCP (`nats://`) or TLS (`tls://`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Plain,
    Tls,
}

/// Where a broker listens: `nats://HOST:PORT` or `tls://HOST:PORT`, checked when parsed.
/// It never holds credentials: [`Broker`] takes those out of a URL that carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    transport: Transport,
    host: String,
    port: u16,
}

impl BrokerUrl {
    pub fn transport(&self) -> Transport {
        self.transport
    }
}

impl FromStr for BrokerUrl {
    type Err = BrokerError;

    fn from_str(text: &str) -> Result<BrokerUrl, BrokerError> {
        let (url, credentials) = parse(text)?;
        match credentials {
            Credentials::None => Ok(url),
            _ => Err(BrokerError::BadUrl(redacted(text))),
        }
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.transport {
            Transport::Plain => "nats",
            Transport::Tls => "tls",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// A password or token: used, compared, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    fn expose(&self) -> String {
        self.0.clone()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Who clab says it is to the broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// Nobody: only for a broker that asks for no authentication (a loopback one).
    #[default]
    None,
    UserPassword {
        user: String,
        password: Secret,
    },
    Token(Secret),
    /// An NATS credentials file: a user's JWT and the NKey seed that signs for it.
    File(PathBuf),
}

/// The credentials and trust clab brings to a broker, from the command line or the
/// environment rather than the URL, so secrets stay out of `ps` and shell history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    pub credentials: Credentials,
    /// PEM certificates of the authority that signed the broker's certificate (a private
    /// CA); given, TLS is required whatever the URL's scheme. Without it a `tls://` broker
    /// is checked against the system's authorities.
    pub ca: Option<PathBuf>,
}

/// A broker and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub url: BrokerUrl,
    pub access: Access,
}

impl Broker {
    /// Adds `access` to what the URL gave; credentials given both ways are refused rather
    /// than one silently winning.
    pub fn with_access(mut self, access: Access) -> Result<Broker, BrokerError> {
        if access.credentials != Credentials::None {
            if self.access.credentials != Credentials::None {
                return Err(BrokerError::CredentialsTwice(self.url));
            }
            self.access.credentials = access.credentials;
        }
        if access.ca.is_some() {
            self.access.ca = access.ca;
        }
        Ok(self)
    }

    /// Whether the connection is encrypted: a `tls://` URL, or a CA given.
    pub fn tls(&self) -> bool {
        self.url.transport == Transport::Tls || self.access.ca.is_some()
    }

    /// Connects as `name`, failing after `timeout` rather than retrying; a broker that
    /// refuses the credentials says so in its own error.
    pub(super) async fn connect(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<async_nats::Client, BrokerError> {
        let url = &self.url;
        let mut options = match &self.access.credentials {
            Credentials::None => async_nats::ConnectOptions::new(),
            Credentials::UserPassword { user, password } => {
                async_nats::ConnectOptions::with_user_and_password(user.clone(), password.expose())
            }
            Credentials::Token(token) => async_nats::ConnectOptions::with_token(token.expose()),
            Credentials::File(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| BrokerError::CredentialsFile(path.clone(), e.to_string()))?,
        };
        if self.tls() {
            options = options.require_tls(true);
        }
        if let Some(ca) = &self.access.ca {
            options = options.add_root_certificates(ca.clone());
        }
        let events_url = url.clone();
        options
            .name(name)
            .connection_timeout(timeout)
            .event_callback(move |event| report(events_url.clone(), event))
            .connect(url.to_string())
            .await
            .map_err(|e| {
                let reason = e.to_string();
                match e.kind() {
                    ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                        BrokerError::Refused(url.clone())
                    }
                    // rustls's verdict on the broker's certificate comes back as an I/O error.
                    ConnectErrorKind::Tls => BrokerError::Tls(url.clone(), reason),
                    _ if reason.contains("certificate") => BrokerError::Tls(url.clone(), reason),
                    _ => BrokerError::Unreachable(url.clone(), reason),
                }
            })
    }
}

/// What happens to a connection once made, in clab's words: the client reconnects by
/// itself, and says so here rather than in its own log (which `clab` keeps quiet).
async fn report(url: BrokerUrl, event: async_nats::Event) {
    use async_nats::Event;
    match event {
        Event::Disconnected => tracing::warn!(%url, "lost the broker; reconnecting"),
        Event::Connected => tracing::info!(%url, "connected to the broker"),
        Event::ServerError(error) => tracing::warn!(%url, "the broker says: {error}"),
        Event::LameDuckMode => tracing::warn!(%url, "the broker is shutting down"),
        // Each failed reconnection attempt: too many to say.
        Event::ClientError(error) => tracing::debug!(%url, "broker client: {error}"),
        _ => {}
    }
}

impl FromStr for Broker {
    type Err = BrokerError;

    /// `nats://[USER:PASSWORD@|TOKEN@]HOST:PORT`, or `tls://…` alike.
    fn from_str(text: &str) -> Result<Broker, BrokerError> {
        let (url, credentials) = parse(text)?;
        Ok(Broker {
            url,
            access: Access {
                credentials,
                ca: None,
            },
        })
    }
}

impl fmt::Display for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.url.fmt(f)
    }
}

/// Splits a broker URL into where and who; the text of an error never holds its secret.
fn parse(text: &str) -> Result<(BrokerUrl, Credentials), BrokerError> {
    let bad = || BrokerError::BadUrl(redacted(text));
    let url = url::Url::parse(text).map_err(|_| bad())?;
    let transport = match url.scheme() {
        "nats" => Transport::Plain,
        "tls" => Transport::Tls,
        _ => return Err(bad()),
    };
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
    let bare = matches!(url.path(), "" | "/") && url.query().is_none() && url.fragment().is_none();
    let port = match url.port() {
        Some(port) if port != 0 && valid_host && bare => port,
        _ => return Err(bad()),
    };
    let decode = |part: &str| {
        percent_decode_str(part)
            .decode_utf8()
            .map(|text| text.into_owned())
            .map_err(|_| bad())
    };
    // NATS's own convention: `user:password@`, or a lone `token@`.
    let credentials = match (url.username(), url.password()) {
        ("", None) => Credentials::None,
        (user, Some(password)) => Credentials::UserPassword {
            user: decode(user)?,
            password: Secret::new(decode(password)?),
        },
        (token, None) => Credentials::Token(Secret::new(decode(token)?)),
    };
    let url = BrokerUrl {
        transport,
        host: host.to_owned(),
        port,
    };
    Ok((url, credentials))
}

/// `text` with anything between `://` and `@` hidden, for error messages.
fn redacted(text: &str) -> String {
    match (text.find("://"), text.rfind('@')) {
        (Some(start), Some(end)) if start + 3 <= end => {
            format!("{}***{}", &text[..start + 3], &text[end..])
        }
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_are_a_scheme_a_host_and_a_port() {
        let url: BrokerUrl = "nats://127.0.0.1:4222".parse().unwrap();
        assert_eq!(url.to_string(), "nats://127.0.0.1:4222");
        let url: BrokerUrl = "nats://[::1]:4222".parse().unwrap();
        assert_eq!(url.to_string(), "nats://[::1]:4222");
        let url: BrokerUrl = "tls://broker.example:4222".parse().unwrap();
        assert_eq!(
            (url.to_string().as_str(), url.transport()),
            ("tls://broker.example:4222", Transport::Tls)
        );
        assert!("nats://broker.example:7".parse::<BrokerUrl>().is_ok());
        for bad in [
            "127.0.0.1:4222",
            "http://127.0.0.1:4222",
            "nats://127.0.0.1",
            "nats://:4222",
            "nats://host:0",
            "nats://host:99999",
            "nats://ho st:4222",
            "nats://host:4222/path",
            "nats://host:4222?x=1",
        ] {
            assert_eq!(
                bad.parse::<BrokerUrl>(),
                Err(BrokerError::BadUrl(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            BrokerError::BadUrl("x".into()).to_string(),
            "\"x\" is not a broker URL: expected nats://HOST:PORT or tls://HOST:PORT"
        );
    }

    #[test]
    fn credentials_in_a_url_are_taken_out_of_it_and_never_shown() {
        let broker: Broker = "nats://clab:p%40ss@127.0.0.1:4222".parse().unwrap();
        assert_eq!(
            broker.access.credentials,
            Credentials::UserPassword {
                user: "clab".into(),
                password: Secret::new("p@ss")
            }
        );
        assert_eq!(broker.to_string(), "nats://127.0.0.1:4222");
        assert!(!format!("{broker:?}").contains("p@ss"));
        let broker: Broker = "tls://s3cret@[::1]:4443".parse().unwrap();
        assert_eq!(
            broker.access.credentials,
            Credentials::Token(Secret::new("s3cret"))
        );
        assert!(broker.tls());
        // A URL that fails to parse is shown without what it carried.
        let error = "nats://clab:hunter2@host".parse::<Broker>().unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        // A bare BrokerUrl has no place for credentials.
        assert!(
            "nats://clab:pw@127.0.0.1:4222"
                .parse::<BrokerUrl>()
                .is_err()
        );
    }

    #[test]
    fn credentials_come_from_one_place() {
        let token = Access {
            credentials: Credentials::Token(Secret::new("t")),
            ca: None,
        };
        let plain: Broker = "nats://127.0.0.1:4222".parse().unwrap();
        assert!(!plain.tls());
        let broker = plain.with_access(token.clone()).unwrap();
        assert_eq!(broker.access.credentials, token.credentials);
        let in_url: Broker = "nats://u:p@127.0.0.1:4222".parse().unwrap();
        assert_eq!(
            in_url.with_access(token).unwrap_err().to_string(),
            "credentials for the broker at nats://127.0.0.1:4222 are given twice, in its URL and by an option or the environment: give them one way"
        );
        let with_ca = "nats://127.0.0.1:4222"
            .parse::<Broker>()
            .unwrap()
            .with_access(Access {
                credentials: Credentials::None,
                ca: Some("ca.pem".into()),
            })
            .unwrap();
        assert!(with_ca.tls(), "a CA asks for TLS");
    }
}
