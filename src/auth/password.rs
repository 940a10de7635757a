//! Staff passwords: the rules (PCI DSS 8.3.6: at least 12 characters with
//! letters and digits; 8.3.7: not one of the last four) and argon2id.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::clock::Random;
use crate::secret::SecretString;

/// How many earlier passwords a new one may not repeat.
pub const PASSWORD_HISTORY: usize = 4;
pub const MIN_PASSWORD_CHARS: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordRuleError {
    #[error("a password needs at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("a password needs both letters and digits")]
    NeedsLettersAndDigits,
    #[error("a password may not repeat one of the last {PASSWORD_HISTORY}")]
    Reused,
    #[error("a password is at most 256 characters")]
    TooLong,
}

/// Checks the composition rules (history is checked by the caller).
pub fn check_rules(password: &SecretString) -> Result<(), PasswordRuleError> {
    let p = password.expose_secret();
    let chars = p.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(PasswordRuleError::TooShort);
    }
    if chars > 256 {
        return Err(PasswordRuleError::TooLong);
    }
    if !(p.chars().any(char::is_alphabetic) && p.chars().any(|c| c.is_ascii_digit())) {
        return Err(PasswordRuleError::NeedsLettersAndDigits);
    }
    Ok(())
}

/// An argon2id hash in PHC string form, with a random salt.
pub fn hash(password: &SecretString, random: &dyn Random) -> Option<String> {
    let mut salt = [0u8; 16];
    random.fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).ok()?;
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .ok()
        .map(|h| h.to_string())
}

/// Whether `password` matches the stored hash (the comparison inside is constant-time).
pub fn verify(password: &SecretString, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the same work as a real check, for user names that do not exist.
pub fn verify_dummy(password: &SecretString) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        SaltString::encode_b64(b"voltvault-dummy!")
            .ok()
            .and_then(|salt| {
                Argon2::default()
                    .hash_password(b"not a password anyone has", &salt)
                    .ok()
                    .map(|h| h.to_string())
            })
    });
    if let Some(dummy) = dummy {
        let _ = verify(password, dummy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::OsRandom;

    fn s(v: &str) -> SecretString {
        SecretString::new(v.into())
    }

    #[test]
    fn rules_and_hashes() {
        assert_eq!(check_rules(&s("short1")), Err(PasswordRuleError::TooShort));
        assert_eq!(
            check_rules(&s("onlyletterslong")),
            Err(PasswordRuleError::NeedsLettersAndDigits)
        );
        assert_eq!(
            check_rules(&s("123456789012")),
            Err(PasswordRuleError::NeedsLettersAndDigits)
        );
        assert!(check_rules(&s("correct horse 42")).is_ok());
        let h = hash(&s("correct horse 42"), &OsRandom).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&s("correct horse 42"), &h));
        assert!(!verify(&s("correct horse 43"), &h));
        assert!(!verify(&s("x"), "not a hash"));
    }
}
