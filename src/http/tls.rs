//! rustls configuration: TLS 1.2 and 1.3 only, the ring provider's AEAD
//! suites (all forward-secret), optional client certificates checked
//! against the configured CA bundles.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::auth::charger::{ChargerTrust, TlsClientVerifier};
use crate::config::{ClientAuth, TlsConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("{key}: {path}: {problem}")]
    File {
        key: &'static str,
        path: String,
        problem: String,
    },
    #[error("tls: {0}")]
    Rustls(String),
}

fn file_error(key: &'static str, path: &Path, problem: impl ToString) -> TlsSetupError {
    TlsSetupError::File {
        key,
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

pub fn load_certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(key, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(key, path, e))?;
    if certs.is_empty() {
        return Err(file_error(key, path, "no PEM certificate found"));
    }
    Ok(certs)
}

fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    // The parser's error never contains key bytes.
    PrivateKeyDer::from_pem_file(path).map_err(|_| {
        file_error(
            "tls.key_file",
            path,
            "no PEM private key (PKCS#8, PKCS#1 or SEC1) found",
        )
    })
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the server configuration from files named in the configuration.
/// Client certificates are checked by `chargers` (see `auth::charger`).
pub fn server_config(
    tls: &TlsConfig,
    chargers: Arc<ChargerTrust>,
) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let chain = load_certificates("tls.cert_file", &tls.cert_file)?;
    let key = load_private_key(&tls.key_file)?;
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match tls.client_auth {
        ClientAuth::None => None,
        mode => Some(Arc::new(TlsClientVerifier::new(
            chargers,
            mode == ClientAuth::Required,
        ))),
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsSetupError::Rustls(format!("server certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The configured client CA bundles, as trust anchors for client certificates.
pub fn configured_client_roots(
    tls: &TlsConfig,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let mut roots = Vec::new();
    for path in &tls.client_ca_files {
        let certs = load_certificates("tls.client_ca_files", path)?;
        let mut check = RootCertStore::empty();
        for cert in certs {
            check
                .add(cert.clone())
                .map_err(|e| file_error("tls.client_ca_files", path, e))?;
            roots.push(cert);
        }
    }
    Ok(roots)
}
