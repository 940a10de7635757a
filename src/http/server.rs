//! The public listener: TLS over TCP, one task per connection, HTTP/1.1 and
//! HTTP/2, the verified client certificate handed to handlers, and graceful
//! shutdown that lets in-flight requests finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a client may take to open TLS before it is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the connection says about the caller, available to every handler.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub remote_addr: SocketAddr,
    pub tls_version: &'static str,
    pub client_certificate: Option<Arc<ClientCertificate>>,
}

/// A client certificate that passed the TLS checks: the client holds its key
/// and the chain leads to a trusted anchor (see `auth::charger`). Only the
/// auth layer decides whether it is a principal; handlers never trust it
/// on their own.
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    /// The chain as presented, leaf first, DER.
    pub chain: Vec<Vec<u8>>,
    pub subject: String,
    pub issuer: String,
    pub sha256_hex: String,
    pub not_after: String,
}

impl ClientCertificate {
    fn from_chain(chain: &[rustls_pki_types::CertificateDer<'_>]) -> Option<Self> {
        let leaf = chain.first()?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
        Some(Self {
            chain: chain.iter().map(|c| c.as_ref().to_vec()).collect(),
            subject: parsed.subject().to_string(),
            issuer: parsed.issuer().to_string(),
            sha256_hex: hex::encode(ring::digest::digest(&ring::digest::SHA256, leaf.as_ref())),
            not_after: parsed.validity().not_after.to_string(),
        })
    }
}

/// Serves `router` over TLS until `shutdown` fires, then waits up to `grace`
/// for open requests to finish.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, remote_addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let Some(tls_stream) = handshake(&acceptor, stream, remote_addr).await else {
                return;
            };
            let (_, session) = tls_stream.get_ref();
            let info = ConnectionInfo {
                remote_addr,
                tls_version: match session.protocol_version() {
                    Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                    Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                    _ => "unknown",
                },
                client_certificate: session
                    .peer_certificates()
                    .and_then(ClientCertificate::from_chain)
                    .map(Arc::new),
            };
            let service = router.map_request(move |mut req: axum::http::Request<_>| {
                req.extensions_mut().insert(info.clone());
                req
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder
                .serve_connection(TokioIo::new(tls_stream), TowerToHyperService::new(service));
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%remote_addr, error = %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!(grace_secs = grace.as_secs(), "grace period over; closing open connections"),
    }
}

/// Completes the TLS handshake, or answers a plain-HTTP request with a 400
/// and closes. Failures are logged without anything the client sent.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    remote_addr: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return None,
    }
    // 0x16 opens a TLS handshake record; a letter is a plain HTTP method.
    if first[0] != 0x16 {
        if first[0].is_ascii_uppercase() {
            tracing::info!(%remote_addr, "plain HTTP on the TLS port; answered 400");
            answer_plain_http(stream).await;
        } else {
            tracing::info!(%remote_addr, "not a TLS client; connection closed");
        }
        return None;
    }
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(error)) => {
            tracing::info!(%remote_addr, reason = %error, "TLS handshake refused");
            None
        }
        Err(_) => {
            tracing::info!(%remote_addr, "TLS handshake timed out");
            None
        }
    }
}

async fn answer_plain_http(mut stream: TcpStream) {
    let body = r#"{"type":"urn:voltvault:problem:tls_required","title":"Bad Request","status":400,"code":"tls_required","detail":"this port speaks HTTPS only"}"#;
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
