//! Secret newtypes. They zeroize on drop, print `[REDACTED]` under `Debug`,
//! have no `Display` and no `Serialize`; reading one takes an explicit
//! `expose_*` call that is easy to grep for.

use std::fmt;
use std::path::Path;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// A secret text value: a database password, an HSM PIN, an API key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Reads a secret from a file, refusing files that other users can
    /// read or write. Trailing newlines are dropped.
    pub fn from_file(path: &Path) -> Result<Self, SecretFileError> {
        check_secret_file_permissions(path)?;
        let raw = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            SecretFileError::Unreadable {
                path: path.display().to_string(),
                reason: e.kind().to_string(),
            }
        })?);
        Ok(Self(raw.trim_end_matches(['\r', '\n']).to_owned()))
    }
}

/// Secrets arrive in request bodies; they never leave in one (no `Serialize`).
impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretString)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Secret bytes: key material, plaintext card records on their way in or out.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(value: Vec<u8>) -> Self {
        Self(value)
    }

    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[REDACTED {} bytes]", self.0.len())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretFileError {
    #[error("secret file {path} is accessible by other users (mode {mode:o}); chmod 600 or 640 it")]
    TooOpen { path: String, mode: u32 },
    #[error("secret file {path} cannot be read: {reason}")]
    Unreadable { path: String, reason: String },
}

/// Refuses a secret file that users outside its owner and group may read or
/// write, or that its group may write.
pub fn check_secret_file_permissions(path: &Path) -> Result<(), SecretFileError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| SecretFileError::Unreadable {
        path: path.display().to_string(),
        reason: e.kind().to_string(),
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o027 != 0 {
        return Err(SecretFileError::TooOpen {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn debug_never_prints_the_value() {
        let s = SecretString::new("hunter2-database-password".into());
        assert_eq!(format!("{s:?}"), "[REDACTED]");
        let b = SecretBytes::new(vec![0x41; 32]);
        assert!(!format!("{b:?}").contains("65"));
        assert!(!format!("{b:?}").contains("AAAA"));
    }

    #[test]
    fn secret_files_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        std::fs::write(&path, "123456\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SecretString::from_file(&path),
            Err(SecretFileError::TooOpen { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            SecretString::from_file(&path).unwrap().expose_secret(),
            "123456"
        );
    }
}
