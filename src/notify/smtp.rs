//! The SMTP relay adapter of the [`Mailer`] port, on lettre over tokio and
//! rustls (ring). The relay's certificate is checked against the system
//! CA bundle or `ca_file`; there is no option to skip the check. Plain
//! text is accepted only to a relay on loopback (checked in config).
//!
//! The password lives in a [`SecretString`] and in lettre's credentials,
//! whose `Debug` shows nothing; this type's `Debug` names host and port
//! only. Errors become fixed codes: a relay's answer can quote addresses,
//! so it is never logged or stored.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::delivery::SYSTEM_CA_BUNDLE;
use super::mail::{EmailMessage, MailError, Mailer, check_recipient};
use crate::config::{SmtpConfig, SmtpTls};
use crate::secret::SecretString;

#[derive(Debug, thiserror::Error)]
pub enum SmtpSetupError {
    #[error("notifications.smtp.from: not a valid address")]
    From,
    #[error("notifications.smtp.ca_file: no usable PEM certificates")]
    Roots,
    #[error("notifications.smtp: a password needs a username")]
    Credentials,
    #[error("notifications.smtp: the TLS settings could not be built")]
    Tls,
}

/// `Name <addr@host>` or `addr@host`, as lettre reads it.
pub fn parse_mailbox(raw: &str) -> Option<Mailbox> {
    raw.trim().parse::<Mailbox>().ok()
}

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
    port: u16,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    pub fn new(
        config: &SmtpConfig,
        password: Option<&SecretString>,
    ) -> Result<Self, SmtpSetupError> {
        let from = parse_mailbox(&config.from).ok_or(SmtpSetupError::From)?;
        let host = config.host.trim().to_owned();
        let tls = match config.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => Tls::Required(tls_parameters(&host, config.ca_file.as_deref())?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters(&host, config.ca_file.as_deref())?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(config.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(config.timeout_secs)));
        match (&config.username, password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(
                    user.clone(),
                    password.expose_secret().to_owned(),
                ));
            }
            (None, Some(_)) => return Err(SmtpSetupError::Credentials),
            // A username without a password logs in with an empty one: the
            // relay refuses it, and the attempts say `rejected`.
            (Some(user), None) => {
                builder = builder.credentials(Credentials::new(user.clone(), String::new()));
            }
            (None, None) => {}
        }
        Ok(Self {
            transport: builder.build(),
            from,
            host,
            port: config.port,
        })
    }
}

fn tls_parameters(host: &str, ca_file: Option<&Path>) -> Result<TlsParameters, SmtpSetupError> {
    let pem = std::fs::read(ca_file.unwrap_or(Path::new(SYSTEM_CA_BUNDLE)))
        .map_err(|_| SmtpSetupError::Roots)?;
    let roots = Certificate::from_pem(&pem).map_err(|_| SmtpSetupError::Roots)?;
    TlsParameters::builder(host.to_owned())
        .certificate_store(CertificateStore::None)
        .add_root_certificate(roots)
        .build_rustls()
        .map_err(|_| SmtpSetupError::Tls)
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: EmailMessage) -> Result<(), MailError> {
        check_recipient(&message.to)?;
        let to = parse_mailbox(&message.to).ok_or(MailError::Recipient)?;
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(message.text)
            .map_err(|_| MailError::Recipient)?;
        match self.transport.send(email).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(MailError::Rejected),
            Err(_) => Err(MailError::Unavailable),
        }
    }
}
