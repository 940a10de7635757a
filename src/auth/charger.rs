//! Chargers authenticate with client certificates. Two checks, both fail closed:
//!
//! 1. TLS ([`TlsClientVerifier`]): the handshake proves possession of the
//!    certificate's key, and the chain must lead to a trusted anchor — the
//!    configured `tls.client_ca_files` plus every charger CA registered in the
//!    database. A chain that leads nowhere ends the handshake. A chain that
//!    leads to a known anchor but is outside its validity period is let
//!    through so that the request can be refused with a 401 and an audit event.
//! 2. Authentication ([`ChargerTrust::authenticate`]): the chain is verified
//!    again, against each registered CA on its own and at the injected clock's
//!    time; the CA that verifies it names the tenant; the leaf must not be on
//!    that CA's revocation lists — serials revoked through the admin API or
//!    CLI, and the CA's own X.509 CRL once imported (its signature is checked
//!    on import and again by webpki). A certificate that only chains to a
//!    configured bundle (not a registered CA) is no principal.
//!
//! The trusted set lives in an `RwLock<Arc<Snapshot>>`, rebuilt from the
//! database at start, after every change on this node and periodically.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};

use super::records::ChargerCaRecord;
use crate::ids::{ChargerCaId, TenantId};
use crate::store::{AuthStore, StoreError};

/// A charger that proved its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargerIdentity {
    pub tenant: TenantId,
    pub ca: ChargerCaId,
    /// The URI SAN if present, else the subject CN.
    pub identity: String,
}

/// Why a certificate is not a principal. The `reason` is the audit reason and
/// the problem code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateRefusal {
    /// No registered CA issued it.
    UnknownCa,
    Expired,
    Revoked,
    /// Chained to a CA but names no CN or URI SAN.
    NoIdentity,
}

impl CertificateRefusal {
    pub fn code(self) -> &'static str {
        match self {
            Self::UnknownCa => "certificate_unknown_ca",
            Self::Expired => "certificate_expired",
            Self::Revoked => "certificate_revoked",
            Self::NoIdentity => "certificate_no_identity",
        }
    }
}

struct CaEntry {
    id: ChargerCaId,
    tenant: TenantId,
    verifier: Arc<dyn ClientCertVerifier>,
}

struct Snapshot {
    cas: Vec<CaEntry>,
    revoked: HashSet<(ChargerCaId, String)>,
    /// Verifies against every anchor (configured bundles and registered CAs);
    /// `None` when there are none, which refuses every certificate.
    tls: Option<Arc<dyn ClientCertVerifier>>,
}

/// The set of trusted charger CAs, shared by the TLS layer and the auth layer.
pub struct ChargerTrust {
    provider: Arc<CryptoProvider>,
    configured_roots: Vec<CertificateDer<'static>>,
    snapshot: RwLock<Arc<Snapshot>>,
}

impl std::fmt::Debug for ChargerTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChargerTrust")
    }
}

fn single_verifier(
    provider: &Arc<CryptoProvider>,
    roots: &[CertificateDer<'static>],
) -> Option<Arc<dyn ClientCertVerifier>> {
    verifier_with_crl(provider, roots, None)
}

/// A verifier for `roots`; with a CRL, the leaf must not be on it (a leaf
/// its CRL does not cover is accepted: the CA may not have published one).
fn verifier_with_crl(
    provider: &Arc<CryptoProvider>,
    roots: &[CertificateDer<'static>],
    crl: Option<CertificateRevocationListDer<'static>>,
) -> Option<Arc<dyn ClientCertVerifier>> {
    let mut store = RootCertStore::empty();
    for root in roots {
        if store.add(root.clone()).is_err() {
            tracing::warn!("a charger CA certificate cannot be used as a trust anchor; skipped");
        }
    }
    if store.is_empty() {
        return None;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider.clone());
    let builder = match crl {
        Some(crl) => builder
            .with_crls([crl])
            .only_check_end_entity_revocation()
            .allow_unknown_revocation_status(),
        None => builder,
    };
    builder.build().ok()
}

fn is_out_of_validity(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(
            CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. }
        )
    )
}

/// Whether the chain leads to the verifier's anchors at a moment inside the
/// leaf's own validity: tells "expired, but ours" from "not ours at all".
fn chains_within_own_validity(
    verifier: &dyn ClientCertVerifier,
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return false;
    };
    let validity = cert.validity();
    let (from, to) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    if to <= from {
        return false;
    }
    let mid = from + (to - from) / 2;
    let Ok(secs) = u64::try_from(mid) else {
        return false;
    };
    let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
    verifier.verify_client_cert(leaf, intermediates, at).is_ok()
}

impl ChargerTrust {
    /// Starts with the configured bundles only; call [`Self::reload`] to add
    /// the registered CAs.
    pub fn new(
        provider: Arc<CryptoProvider>,
        configured_roots: Vec<CertificateDer<'static>>,
    ) -> Self {
        let tls = single_verifier(&provider, &configured_roots);
        Self {
            provider,
            configured_roots,
            snapshot: RwLock::new(Arc::new(Snapshot {
                cas: Vec::new(),
                revoked: HashSet::new(),
                tls,
            })),
        }
    }

    fn current(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuilds the trusted set from the database.
    pub async fn reload(&self, store: &dyn AuthStore) -> Result<(), StoreError> {
        let records = store.active_charger_cas().await?;
        let revoked = store.revoked_charger_certificates().await?;
        let crls: HashMap<ChargerCaId, Vec<u8>> = store.charger_crls().await?.into_iter().collect();
        self.install(&records, revoked.into_iter().collect(), &crls);
        Ok(())
    }

    fn install(
        &self,
        records: &[ChargerCaRecord],
        revoked: HashSet<(ChargerCaId, String)>,
        crls: &HashMap<ChargerCaId, Vec<u8>>,
    ) {
        let mut cas = Vec::new();
        let mut all_roots = self.configured_roots.clone();
        for record in records {
            let der = CertificateDer::from(record.cert_der.clone());
            let crl = crls
                .get(&record.id)
                .map(|c| CertificateRevocationListDer::from(c.clone()));
            if let Some(verifier) =
                verifier_with_crl(&self.provider, std::slice::from_ref(&der), crl)
            {
                cas.push(CaEntry {
                    id: record.id,
                    tenant: record.tenant,
                    verifier,
                });
                all_roots.push(der);
            }
        }
        let snapshot = Arc::new(Snapshot {
            cas,
            revoked,
            tls: single_verifier(&self.provider, &all_roots),
        });
        match self.snapshot.write() {
            Ok(mut s) => *s = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }

    /// Decides who a certificate chain (leaf first, DER) belongs to, at `now`.
    pub fn authenticate(
        &self,
        chain: &[Vec<u8>],
        now: DateTime<Utc>,
    ) -> Result<ChargerIdentity, CertificateRefusal> {
        let Some((leaf, rest)) = chain.split_first() else {
            return Err(CertificateRefusal::UnknownCa);
        };
        let leaf = CertificateDer::from(leaf.as_slice());
        let intermediates: Vec<CertificateDer<'_>> = rest
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let secs = u64::try_from(now.timestamp()).unwrap_or(0);
        let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
        let snapshot = self.current();
        let mut out_of_validity = false;
        for ca in &snapshot.cas {
            match ca.verifier.verify_client_cert(&leaf, &intermediates, at) {
                Ok(_) => {
                    let parsed = LeafFacts::parse(&leaf).ok_or(CertificateRefusal::NoIdentity)?;
                    if snapshot
                        .revoked
                        .contains(&(ca.id, parsed.serial_hex.clone()))
                    {
                        return Err(CertificateRefusal::Revoked);
                    }
                    let identity = parsed.identity.ok_or(CertificateRefusal::NoIdentity)?;
                    return Ok(ChargerIdentity {
                        tenant: ca.tenant,
                        ca: ca.id,
                        identity,
                    });
                }
                Err(rustls::Error::InvalidCertificate(CertificateError::Revoked)) => {
                    return Err(CertificateRefusal::Revoked);
                }
                Err(error) if is_out_of_validity(&error) => {
                    out_of_validity |=
                        chains_within_own_validity(ca.verifier.as_ref(), &leaf, &intermediates);
                }
                Err(_) => {}
            }
        }
        Err(if out_of_validity {
            CertificateRefusal::Expired
        } else {
            CertificateRefusal::UnknownCa
        })
    }
}

/// What the auth layer reads from a leaf certificate.
struct LeafFacts {
    serial_hex: String,
    identity: Option<String>,
}

impl LeafFacts {
    fn parse(der: &[u8]) -> Option<Self> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let serial_hex = normalize_serial(&hex::encode(cert.raw_serial()))?;
        let uri = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .and_then(|san| {
                san.value.general_names.iter().find_map(|n| match n {
                    GeneralName::URI(uri) => Some((*uri).to_owned()),
                    _ => None,
                })
            });
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let identity = uri
            .or(cn)
            .filter(|id| !id.is_empty() && id.len() <= 256 && !id.chars().any(char::is_control));
        Some(Self {
            serial_hex,
            identity,
        })
    }
}

/// A certificate serial as lowercase hex without separators or leading zeros.
pub fn normalize_serial(raw: &str) -> Option<String> {
    let digits: String = raw
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    if digits.is_empty() || digits.len() > 64 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    Some(if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    })
}

/// Why a CRL was refused on import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlRefusal {
    Malformed,
    OtherIssuer,
    BadSignature,
}

/// Checks that `crl_der` is a CRL issued and signed by the CA `ca_der`.
pub fn check_crl(ca_der: &[u8], crl_der: &[u8]) -> Result<(), CrlRefusal> {
    let (_, ca) = x509_parser::parse_x509_certificate(ca_der).map_err(|_| CrlRefusal::Malformed)?;
    let (_, crl) = x509_parser::parse_x509_crl(crl_der).map_err(|_| CrlRefusal::Malformed)?;
    if crl.issuer().as_raw() != ca.subject().as_raw() {
        return Err(CrlRefusal::OtherIssuer);
    }
    crl.verify_signature(ca.public_key())
        .map_err(|_| CrlRefusal::BadSignature)
}

/// The serial of a PEM or DER certificate, normalized.
pub fn certificate_serial(der: &[u8]) -> Option<String> {
    LeafFacts::parse(der).map(|f| f.serial_hex)
}

/// The TLS side of [`ChargerTrust`]: see the module documentation.
pub struct TlsClientVerifier {
    trust: Arc<ChargerTrust>,
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for TlsClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsClientVerifier")
    }
}

impl TlsClientVerifier {
    pub fn new(trust: Arc<ChargerTrust>, mandatory: bool) -> Self {
        let algorithms = trust.provider.signature_verification_algorithms;
        Self {
            trust,
            mandatory,
            algorithms,
        }
    }
}

impl ClientCertVerifier for TlsClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The set changes at run time; clients send the certificate they have.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let Some(tls) = self.trust.current().tls.clone() else {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        };
        match tls.verify_client_cert(end_entity, intermediates, now) {
            Ok(verified) => Ok(verified),
            // Known anchor, wrong time: refused with a 401 and an audit event later.
            Err(error)
                if is_out_of_validity(&error)
                    && chains_within_own_validity(tls.as_ref(), end_entity, intermediates) =>
            {
                Ok(ClientCertVerified::assertion())
            }
            Err(error) => Err(error),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_normalize() {
        assert_eq!(normalize_serial("00:1A:2b").as_deref(), Some("1a2b"));
        assert_eq!(normalize_serial("0000").as_deref(), Some("0"));
        assert_eq!(normalize_serial("xyz"), None);
        assert_eq!(normalize_serial(""), None);
    }
}
