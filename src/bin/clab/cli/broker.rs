//! How `clab serve` and `clab worker` authenticate to a broker and which CA they trust: the
//! options both share, and the environment variables that keep secrets out of `ps` and shell
//! history. Credentials come from one place: the URL, an option, or — where neither gave
//! any — the environment.

use std::path::{Path, PathBuf};

use clap::Args;

use clab::pool::broker::{
    Access, Broker, BrokerError, Credentials, PASSWORD_VARIABLE, Secret, TOKEN_VARIABLE,
    USER_VARIABLE,
};

#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Broker access (nats:// and tls:// URLs)")]
pub struct BrokerAccessArgs {
    /// Authenticate as this user; the password from --nats-password-file or
    /// $CLAB_NATS_PASSWORD
    #[arg(long, value_name = "USER")]
    pub nats_user: Option<String>,

    /// A file whose first line is --nats-user's password
    #[arg(long, value_name = "FILE", value_parser = secret_in_file, requires = "nats_user")]
    pub nats_password_file: Option<Secret>,

    /// A file whose first line is the broker's token [or $CLAB_NATS_TOKEN]
    #[arg(long, value_name = "FILE", value_parser = secret_in_file, conflicts_with = "nats_user")]
    pub nats_token_file: Option<Secret>,

    /// An NATS credentials file: a user's JWT and its NKey seed, as `nsc` writes them
    #[arg(long, value_name = "FILE", value_parser = readable_file, conflicts_with_all = ["nats_user", "nats_token_file"])]
    pub nats_creds: Option<PathBuf>,

    /// The certificate authority (PEM) that signed the broker's certificate, for a private
    /// CA; TLS is then required, whatever the URL's scheme
    #[arg(long, value_name = "FILE", value_parser = readable_file)]
    pub nats_ca: Option<PathBuf>,
}

impl BrokerAccessArgs {
    /// Whether any of these options was given.
    pub fn given(&self) -> bool {
        self.nats_user.is_some()
            || self.nats_token_file.is_some()
            || self.nats_creds.is_some()
            || self.nats_ca.is_some()
    }

    /// `broker` with the credentials and CA these options give, and the environment's
    /// credentials where neither the URL nor an option gave any.
    pub fn apply(&self, broker: Broker) -> Result<Broker, BrokerError> {
        self.apply_with(broker, |name| std::env::var(name).ok())
    }

    fn apply_with(
        &self,
        broker: Broker,
        environment: impl Fn(&str) -> Option<String>,
    ) -> Result<Broker, BrokerError> {
        let credentials = if let Some(user) = &self.nats_user {
            let password = self
                .nats_password_file
                .clone()
                .or_else(|| environment(PASSWORD_VARIABLE).map(Secret::new))
                .ok_or_else(|| BrokerError::NoPassword(user.clone()))?;
            Credentials::UserPassword {
                user: user.clone(),
                password,
            }
        } else if let Some(token) = &self.nats_token_file {
            Credentials::Token(token.clone())
        } else if let Some(path) = &self.nats_creds {
            Credentials::File(path.clone())
        } else {
            Credentials::None
        };
        let ca = self.nats_ca.clone();
        let mut broker = broker.with_access(Access { credentials, ca })?;
        if broker.access.credentials == Credentials::None {
            broker.access.credentials = match (
                environment(TOKEN_VARIABLE),
                environment(USER_VARIABLE),
                environment(PASSWORD_VARIABLE),
            ) {
                (Some(token), _, _) => Credentials::Token(Secret::new(token)),
                (None, Some(user), Some(password)) => Credentials::UserPassword {
                    user,
                    password: Secret::new(password),
                },
                (None, Some(user), None) => return Err(BrokerError::NoPassword(user)),
                _ => Credentials::None,
            };
        }
        Ok(broker)
    }
}

/// The first line of a file holding a secret, read when the command line is parsed.
fn secret_in_file(path: &str) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let secret = text.lines().next().unwrap_or_default().trim();
    if secret.is_empty() {
        return Err(format!("{path} is empty: its first line is the secret"));
    }
    Ok(Secret::new(secret))
}

/// A path that can be opened now, so a mistyped CA fails before any connection.
fn readable_file(path: &str) -> Result<PathBuf, String> {
    std::fs::File::open(Path::new(path)).map_err(|e| format!("cannot read {path}: {e}"))?;
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(url: &str) -> Broker {
        url.parse().unwrap()
    }

    #[test]
    fn the_environment_fills_in_only_where_nothing_else_gave_credentials() {
        let environment = |name: &str| match name {
            TOKEN_VARIABLE => Some("from-env".to_owned()),
            _ => None,
        };
        let none = BrokerAccessArgs::default();
        let plain = none
            .apply_with(broker("nats://127.0.0.1:4222"), environment)
            .unwrap();
        assert_eq!(
            plain.access.credentials,
            Credentials::Token(Secret::new("from-env"))
        );
        let in_url = none
            .apply_with(broker("nats://u:p@127.0.0.1:4222"), environment)
            .unwrap();
        assert_eq!(
            in_url.access.credentials,
            Credentials::UserPassword {
                user: "u".into(),
                password: Secret::new("p")
            }
        );
        let token = BrokerAccessArgs {
            nats_token_file: Some(Secret::new("from-file")),
            ..BrokerAccessArgs::default()
        };
        let from_file = token
            .apply_with(broker("nats://127.0.0.1:4222"), environment)
            .unwrap();
        assert_eq!(
            from_file.access.credentials,
            Credentials::Token(Secret::new("from-file"))
        );
        assert!(matches!(
            token.apply_with(broker("nats://u:p@127.0.0.1:4222"), environment),
            Err(BrokerError::CredentialsTwice(_))
        ));
    }

    #[test]
    fn a_user_needs_a_password() {
        let user = BrokerAccessArgs {
            nats_user: Some("clab".into()),
            ..BrokerAccessArgs::default()
        };
        let error = user
            .apply_with(broker("nats://127.0.0.1:4222"), |_| None)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "no password for the broker user \"clab\": give it in a file (--nats-password-file) or in $CLAB_NATS_PASSWORD"
        );
        let with_password = user
            .apply_with(broker("nats://127.0.0.1:4222"), |name| {
                (name == PASSWORD_VARIABLE).then(|| "pw".to_owned())
            })
            .unwrap();
        assert_eq!(
            with_password.access.credentials,
            Credentials::UserPassword {
                user: "clab".into(),
                password: Secret::new("pw")
            }
        );
    }

    #[test]
    fn a_secret_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\nignored\n").unwrap();
        assert_eq!(
            secret_in_file(path.to_str().unwrap()),
            Ok(Secret::new("s3cret"))
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(
            secret_in_file(path.to_str().unwrap())
                .unwrap_err()
                .contains("is empty")
        );
        assert!(
            secret_in_file("/nonexistent/token")
                .unwrap_err()
                .starts_with("cannot read")
        );
    }
}
