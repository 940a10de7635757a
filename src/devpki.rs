//! A development PKI for `voltvault dev` and the tests: a CA, a server
//! certificate for localhost, and charger client certificates. Production
//! certificates come from the operator's own PKI.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
}

/// A certificate authority that can issue certificates.
pub struct DevCa {
    pub cert: Certificate,
    pub key: KeyPair,
}

/// An issued certificate with its key, as PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl DevCa {
    pub fn generate(common_name: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self { cert, key })
    }

    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for the given DNS names and IP addresses.
    pub fn issue_server(&self, names: &[&str]) -> Result<Issued, PkiError> {
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
        params.distinguished_name = name(names.first().copied().unwrap_or("voltvault"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A client certificate whose subject CN names a charger.
    pub fn issue_client(&self, common_name: &str) -> Result<Issued, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "voltvault development");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// The files `voltvault dev` keeps in its data directory.
#[derive(Debug, Clone)]
pub struct DevPkiFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub charger_cert: PathBuf,
    pub charger_key: PathBuf,
}

impl DevPkiFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            charger_cert: dir.join("charger-1.pem"),
            charger_key: dir.join("charger-1.key"),
        }
    }

    fn all_exist(&self) -> bool {
        [
            &self.ca_cert,
            &self.server_cert,
            &self.server_key,
            &self.charger_cert,
            &self.charger_key,
        ]
        .iter()
        .all(|p| p.is_file())
    }

    /// Writes a fresh CA, server and charger certificate unless all exist.
    /// The CA key is not kept: development certificates are re-made, not renewed.
    pub fn ensure(&self) -> Result<bool, PkiError> {
        if self.all_exist() {
            return Ok(false);
        }
        let ca = DevCa::generate("voltvault development CA")?;
        let server = ca.issue_server(&["localhost", "127.0.0.1", "::1"])?;
        let charger = ca.issue_client("charger-1")?;
        write_file(&self.ca_cert, &ca.cert_pem(), 0o644)?;
        write_file(&self.server_cert, &server.cert_pem, 0o644)?;
        write_file(&self.server_key, &server.key_pem, 0o600)?;
        write_file(&self.charger_cert, &charger.cert_pem, 0o644)?;
        write_file(&self.charger_key, &charger.key_pem, 0o600)?;
        Ok(true)
    }
}

/// Writes a file created with `mode`, so a key is never readable by others, not even briefly.
pub fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| PkiError::Io {
        path: path.display().to_string(),
        reason: e.kind().to_string(),
    };
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)
}
