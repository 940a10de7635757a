//! Bearer secrets: API keys (`vv_<key id>_<secret>`), staff session tokens
//! (`vvs_<secret>`) and login challenges (`vvc_<secret>`). Each carries 256
//! random bits, is shown once and is stored only as a keyed hash.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::clock::Random;
use crate::secret::SecretString;

const SECRET_LEN: usize = 43; // 32 bytes, base64url without padding

/// The public half of an API key: 16 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ApiKeyId(String);

impl ApiKeyId {
    pub fn generate(random: &dyn Random) -> Self {
        let mut bytes = [0u8; 8];
        random.fill(&mut bytes);
        Self(hex::encode(bytes))
    }

    pub fn parse(raw: &str) -> Option<Self> {
        (raw.len() == 16
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyId({})", self.0)
    }
}

fn random_secret(random: &dyn Random) -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    random.fill(bytes.as_mut());
    Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

fn is_secret(raw: &str) -> bool {
    raw.len() == SECRET_LEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A new API key: `vv_<key id>_<secret>`.
pub fn new_api_key(random: &dyn Random) -> (ApiKeyId, SecretString) {
    let id = ApiKeyId::generate(random);
    let secret = random_secret(random);
    let full = SecretString::new(format!("vv_{}_{}", id.as_str(), secret.as_str()));
    (id, full)
}

/// A new secret for an existing key id (rotation).
pub fn new_api_key_secret(random: &dyn Random, id: &ApiKeyId) -> SecretString {
    let secret = random_secret(random);
    SecretString::new(format!("vv_{}_{}", id.as_str(), secret.as_str()))
}

/// A new bearer token with the given prefix (`vvs_` or `vvc_`).
pub fn new_bearer(random: &dyn Random, prefix: &str) -> SecretString {
    let secret = random_secret(random);
    SecretString::new(format!("{prefix}{}", secret.as_str()))
}

/// What an `Authorization: Bearer` value turned out to be. The whole value
/// stays secret; only the key id is public.
#[derive(Debug)]
pub enum Bearer {
    ApiKey { id: ApiKeyId, full: SecretString },
    Session(SecretString),
}

impl Bearer {
    pub fn parse(value: &str) -> Option<Self> {
        if let Some(rest) = value.strip_prefix("vvs_") {
            return is_secret(rest).then(|| Bearer::Session(SecretString::new(value.to_owned())));
        }
        let rest = value.strip_prefix("vv_")?;
        let (id, secret) = rest.split_once('_')?;
        let id = ApiKeyId::parse(id)?;
        is_secret(secret).then(|| Bearer::ApiKey {
            id,
            full: SecretString::new(value.to_owned()),
        })
    }
}

/// A login challenge as the client sends it back.
pub fn parse_challenge(value: &str) -> Option<SecretString> {
    let rest = value.strip_prefix("vvc_")?;
    is_secret(rest).then(|| SecretString::new(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::OsRandom;

    #[test]
    fn api_keys_parse_back_and_keep_their_id() {
        let (id, full) = new_api_key(&OsRandom);
        match Bearer::parse(full.expose_secret()) {
            Some(Bearer::ApiKey { id: parsed, .. }) => assert_eq!(parsed, id),
            other => panic!("{other:?}"),
        }
        let session = new_bearer(&OsRandom, "vvs_");
        assert!(matches!(
            Bearer::parse(session.expose_secret()),
            Some(Bearer::Session(_))
        ));
        assert!(Bearer::parse("vv_zz_abc").is_none());
        assert!(Bearer::parse("Basic abc").is_none());
        assert!(parse_challenge(new_bearer(&OsRandom, "vvc_").expose_secret()).is_some());
        // The whole secret: base64url may hold `_` itself, so the part
        // after the last `_` can be a single character found anywhere.
        let secret = &full.expose_secret()[full.expose_secret().len() - SECRET_LEN..];
        assert!(!format!("{:?}", Bearer::parse(full.expose_secret())).contains(secret));
    }
}
