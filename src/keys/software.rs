//! Software key provider — FOR `voltvault dev` AND TESTS ONLY.
//!
//! The KEKs and HMAC keys live in process memory, sealed at rest in one file
//! with AES-256-GCM under a sealing key that is either
//! - derived by argon2id from a development passphrase, or
//! - random and split into M-of-N Shamir shares (blahaj), none stored.
//!
//! It offers none of an HSM's guarantees (keys are in ordinary memory and
//! can be read by anyone who can read the process), so every constructor
//! takes the configured [`Mode`] and refuses [`Mode::Production`].
//!
//! Data keys are wrapped with AES-KWP (RFC 5649), the same construction as
//! PKCS#11 `CKM_AES_KEY_WRAP_PAD`, and the key check value follows
//! `CKA_CHECK_VALUE`, so both providers produce the same shapes.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use aes_kw::KekAes256;
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{
    DataKey, GeneratedDataKey, KekVersion, KeyCheckValue, KeyError, KeyProvider, WrappedDataKey,
    audit_message, fingerprint_message,
};
use crate::clock::Random;
use crate::config::Mode;
use crate::secret::SecretString;

const FILE_FORMAT: &str = "voltvault-software-kek/1";
const SHARE_PREFIX: &str = "vvshare1-";
const MIN_PASSPHRASE_CHARS: usize = 12;

type Key32 = Zeroizing<[u8; 32]>;

/// Refuses the software provider outside development mode.
pub fn ensure_allowed(mode: Mode) -> Result<(), KeyError> {
    match mode {
        Mode::Development => Ok(()),
        Mode::Production => Err(KeyError::Misconfigured(
            "the software key provider is for development and tests only; \
             production mode requires a PKCS#11 HSM"
                .to_owned(),
        )),
    }
}

/// argon2id cost parameters, recorded in the sealed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// The OWASP argon2id baseline (19 MiB, 2 passes, 1 lane).
    fn default() -> Self {
        Self {
            m_cost_kib: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

/// What unseals the file.
pub enum Unseal {
    Passphrase(SecretString),
    Shares(Vec<SecretString>),
}

impl fmt::Debug for Unseal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unseal::Passphrase(_) => f.write_str("Unseal::Passphrase([REDACTED])"),
            Unseal::Shares(s) => write!(f, "Unseal::Shares({} × [REDACTED])", s.len()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum UnsealHeader {
    Passphrase { salt: String, kdf: KdfParams },
    Shamir { threshold: u8, shares: u8 },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedFile {
    format: String,
    unseal: UnsealHeader,
    nonce: String,
    ciphertext: String,
}

#[derive(Clone)]
struct Keys {
    keks: BTreeMap<u32, Key32>,
    fingerprint: Key32,
    audit: Key32,
}

/// The development key provider. See the module documentation.
pub struct SoftwareProvider {
    path: PathBuf,
    header: UnsealHeader,
    sealing_key: Key32,
    keys: RwLock<Keys>,
    random: Arc<dyn Random>,
}

impl fmt::Debug for SoftwareProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareProvider")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SoftwareProvider {
    /// Creates a new sealed file protected by a passphrase. Refuses to
    /// overwrite an existing file.
    pub fn init_with_passphrase(
        mode: Mode,
        path: &Path,
        passphrase: &SecretString,
        kdf: KdfParams,
        random: Arc<dyn Random>,
    ) -> Result<Self, KeyError> {
        ensure_allowed(mode)?;
        if passphrase.expose_secret().chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(KeyError::Misconfigured(format!(
                "the development passphrase must have at least {MIN_PASSPHRASE_CHARS} characters"
            )));
        }
        let mut salt = [0u8; 16];
        random.fill(&mut salt);
        let header = UnsealHeader::Passphrase {
            salt: hex::encode(salt),
            kdf,
        };
        let sealing_key = derive_from_passphrase(passphrase, &salt, kdf)?;
        let provider = Self::fresh(path, header, sealing_key, random)?;
        provider.write_sealed(&provider.read_keys(), true)?;
        Ok(provider)
    }

    /// Creates a new sealed file whose sealing key is split into `shares`
    /// Shamir shares, any `threshold` of which unseal it. Returns the shares
    /// for the custodians; they are not stored anywhere.
    pub fn init_with_shares(
        mode: Mode,
        path: &Path,
        threshold: u8,
        shares: u8,
        random: Arc<dyn Random>,
    ) -> Result<(Self, Vec<SecretString>), KeyError> {
        ensure_allowed(mode)?;
        if threshold < 2 || shares < threshold {
            return Err(KeyError::Misconfigured(format!(
                "need 2 <= threshold <= shares, got {threshold} of {shares}"
            )));
        }
        let mut sealing_key = Zeroizing::new([0u8; 32]);
        random.fill(sealing_key.as_mut());
        // blahaj draws the polynomial coefficients from its own CSPRNG.
        let dealt: Vec<SecretString> = blahaj::Sharks(threshold)
            .dealer(sealing_key.as_ref())
            .take(usize::from(shares))
            .map(|share| {
                let bytes = Zeroizing::new(Vec::from(&share));
                SecretString::new(format!("{SHARE_PREFIX}{}", hex::encode(bytes.as_slice())))
            })
            .collect();
        let header = UnsealHeader::Shamir { threshold, shares };
        let provider = Self::fresh(path, header, sealing_key, random)?;
        provider.write_sealed(&provider.read_keys(), true)?;
        Ok((provider, dealt))
    }

    /// Opens an existing sealed file.
    pub fn open(
        mode: Mode,
        path: &Path,
        unseal: &Unseal,
        random: Arc<dyn Random>,
    ) -> Result<Self, KeyError> {
        ensure_allowed(mode)?;
        let raw = std::fs::read(path).map_err(|e| {
            KeyError::Misconfigured(format!(
                "software KEK file {} cannot be read: {}",
                path.display(),
                e.kind()
            ))
        })?;
        let file: SealedFile = serde_json::from_slice(&raw)
            .map_err(|_| KeyError::Misconfigured("software KEK file is malformed".to_owned()))?;
        if file.format != FILE_FORMAT {
            return Err(KeyError::Misconfigured(format!(
                "software KEK file has format {:?}, expected {FILE_FORMAT:?}",
                file.format
            )));
        }
        let sealing_key = match (&file.unseal, unseal) {
            (UnsealHeader::Passphrase { salt, kdf }, Unseal::Passphrase(p)) => {
                let salt = hex::decode(salt).map_err(|_| KeyError::UnsealFailed)?;
                derive_from_passphrase(p, &salt, *kdf)?
            }
            (UnsealHeader::Shamir { threshold, .. }, Unseal::Shares(shares)) => {
                recover_from_shares(*threshold, shares)?
            }
            (UnsealHeader::Passphrase { .. }, Unseal::Shares(_)) => {
                return Err(KeyError::Misconfigured(
                    "this software KEK file is unsealed by a passphrase, not shares".to_owned(),
                ));
            }
            (UnsealHeader::Shamir { .. }, Unseal::Passphrase(_)) => {
                return Err(KeyError::Misconfigured(
                    "this software KEK file is unsealed by Shamir shares, not a passphrase"
                        .to_owned(),
                ));
            }
        };
        let nonce = hex::decode(&file.nonce).map_err(|_| KeyError::UnsealFailed)?;
        let ciphertext = hex::decode(&file.ciphertext).map_err(|_| KeyError::UnsealFailed)?;
        if nonce.len() != 12 {
            return Err(KeyError::UnsealFailed);
        }
        let aad = header_aad(&file.unseal)?;
        let plain = Zeroizing::new(
            Aes256Gcm::new(sealing_key.as_ref().into())
                .decrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: &ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| KeyError::UnsealFailed)?,
        );
        let keys = decode_keys(&plain)?;
        Ok(Self {
            path: path.to_owned(),
            header: file.unseal,
            sealing_key,
            keys: RwLock::new(keys),
            random,
        })
    }

    fn fresh(
        path: &Path,
        header: UnsealHeader,
        sealing_key: Key32,
        random: Arc<dyn Random>,
    ) -> Result<Self, KeyError> {
        let keys = Keys {
            keks: BTreeMap::from([(1, random_key(random.as_ref()))]),
            fingerprint: random_key(random.as_ref()),
            audit: random_key(random.as_ref()),
        };
        Ok(Self {
            path: path.to_owned(),
            header,
            sealing_key,
            keys: RwLock::new(keys),
            random,
        })
    }

    fn read_keys(&self) -> Keys {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Seals `keys` to the file: a temporary file, fsync, then rename, so a
    /// crash leaves either the old or the new file.
    fn write_sealed(&self, keys: &Keys, create_new: bool) -> Result<(), KeyError> {
        use std::os::unix::fs::OpenOptionsExt;
        if create_new && self.path.exists() {
            return Err(KeyError::Misconfigured(format!(
                "software KEK file {} already exists; refusing to overwrite it",
                self.path.display()
            )));
        }
        let plain = encode_keys(keys);
        let mut nonce = [0u8; 12];
        self.random.fill(&mut nonce);
        let aad = header_aad(&self.header)?;
        let ciphertext = Aes256Gcm::new(self.sealing_key.as_ref().into())
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .map_err(|_| KeyError::Provider("sealing the software KEK failed".to_owned()))?;
        let file = SealedFile {
            format: FILE_FORMAT.to_owned(),
            unseal: self.header.clone(),
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(ciphertext),
        };
        let json = serde_json::to_vec_pretty(&file)
            .map_err(|_| KeyError::Provider("encoding the software KEK file failed".to_owned()))?;
        let io = |e: std::io::Error| {
            KeyError::Misconfigured(format!(
                "software KEK file {} cannot be written: {}",
                self.path.display(),
                e.kind()
            ))
        };
        let tmp = self.path.with_extension("tmp");
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        out.write_all(&json).map_err(io)?;
        out.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        Ok(())
    }

    fn kek(&self, version: KekVersion) -> Result<KekAes256, KeyError> {
        let keys = self.read_keys();
        let key = keys
            .keks
            .get(&version.0)
            .ok_or_else(|| KeyError::NotFound(version.label()))?;
        Ok(KekAes256::new(key.as_ref().into()))
    }

    fn wrap(&self, kek: KekVersion, key: &DataKey) -> Result<WrappedDataKey, KeyError> {
        let bytes = self
            .kek(kek)?
            .wrap_with_padding_vec(key.expose_secret())
            .map_err(|_| KeyError::Provider("data key wrap failed".to_owned()))?;
        Ok(WrappedDataKey { kek, bytes })
    }
}

#[async_trait]
impl KeyProvider for SoftwareProvider {
    fn name(&self) -> String {
        format!(
            "software (development only) {}",
            self.path.file_name().unwrap_or_default().to_string_lossy()
        )
    }

    async fn kek_versions(&self) -> Result<Vec<KekVersion>, KeyError> {
        Ok(self
            .read_keys()
            .keks
            .keys()
            .map(|v| KekVersion(*v))
            .collect())
    }

    async fn create_kek(&self) -> Result<KekVersion, KeyError> {
        let mut guard = match self.keys.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let next = guard
            .keks
            .keys()
            .next_back()
            .map_or(KekVersion(1), |v| KekVersion(*v).next());
        let mut updated = guard.clone();
        updated
            .keks
            .insert(next.0, random_key(self.random.as_ref()));
        self.write_sealed(&updated, false)?;
        *guard = updated;
        Ok(next)
    }

    async fn destroy_kek(&self, kek: KekVersion) -> Result<(), KeyError> {
        let mut guard = match self.keys.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !guard.keks.contains_key(&kek.0) {
            return Err(KeyError::NotFound(kek.label()));
        }
        if guard.keks.len() == 1 {
            return Err(KeyError::Misconfigured(
                "refusing to destroy the last KEK".to_owned(),
            ));
        }
        let mut updated = guard.clone();
        updated.keks.remove(&kek.0);
        self.write_sealed(&updated, false)?;
        *guard = updated;
        Ok(())
    }

    async fn kek_check_value(&self, kek: KekVersion) -> Result<KeyCheckValue, KeyError> {
        let keys = self.read_keys();
        let key = keys
            .keks
            .get(&kek.0)
            .ok_or_else(|| KeyError::NotFound(kek.label()))?;
        Ok(KeyCheckValue::of_aes256(key))
    }

    async fn generate_data_key(&self, kek: KekVersion) -> Result<GeneratedDataKey, KeyError> {
        let raw = random_key(self.random.as_ref());
        let key = DataKey::from_slice(raw.as_ref())?;
        let wrapped = self.wrap(kek, &key)?;
        Ok(GeneratedDataKey { wrapped, key })
    }

    async fn unwrap_data_key(&self, wrapped: &WrappedDataKey) -> Result<DataKey, KeyError> {
        let raw = Zeroizing::new(
            self.kek(wrapped.kek)?
                .unwrap_with_padding_vec(&wrapped.bytes)
                .map_err(|_| KeyError::IntegrityFailure)?,
        );
        DataKey::from_slice(&raw).map_err(|_| KeyError::IntegrityFailure)
    }

    async fn rewrap_data_key(
        &self,
        wrapped: &WrappedDataKey,
        to: KekVersion,
    ) -> Result<WrappedDataKey, KeyError> {
        let key = self.unwrap_data_key(wrapped).await?;
        self.wrap(to, &key)
    }

    async fn fingerprint(&self, tenant: &str, data: &[u8]) -> Result<[u8; 32], KeyError> {
        let keys = self.read_keys();
        hmac_sha256(&keys.fingerprint, &fingerprint_message(tenant, data))
    }

    async fn audit_mac(&self, data: &[u8]) -> Result<[u8; 32], KeyError> {
        let keys = self.read_keys();
        hmac_sha256(&keys.audit, &audit_message(data))
    }

    async fn health(&self) -> bool {
        true
    }
}

fn hmac_sha256(key: &[u8; 32], msg: &[u8]) -> Result<[u8; 32], KeyError> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|_| KeyError::Provider("HMAC key rejected".to_owned()))?;
    mac.update(msg);
    Ok(mac.finalize().into_bytes().into())
}

fn random_key(random: &dyn Random) -> Key32 {
    let mut k = Zeroizing::new([0u8; 32]);
    random.fill(k.as_mut());
    k
}

fn derive_from_passphrase(
    passphrase: &SecretString,
    salt: &[u8],
    kdf: KdfParams,
) -> Result<Key32, KeyError> {
    let params = argon2::Params::new(kdf.m_cost_kib, kdf.t_cost, kdf.p_cost, Some(32))
        .map_err(|_| KeyError::Misconfigured("invalid argon2id parameters".to_owned()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.expose_secret().as_bytes(), salt, out.as_mut())
        .map_err(|_| KeyError::Misconfigured("argon2id key derivation failed".to_owned()))?;
    Ok(out)
}

fn recover_from_shares(threshold: u8, given: &[SecretString]) -> Result<Key32, KeyError> {
    let mut shares = Vec::with_capacity(given.len());
    for s in given {
        let text = s
            .expose_secret()
            .trim()
            .strip_prefix(SHARE_PREFIX)
            .ok_or_else(|| {
                KeyError::Misconfigured(format!("a share must start with {SHARE_PREFIX}"))
            })?;
        let bytes = Zeroizing::new(
            hex::decode(text)
                .map_err(|_| KeyError::Misconfigured("a share is not valid hex".to_owned()))?,
        );
        let share = blahaj::Share::try_from(bytes.as_slice())
            .map_err(|_| KeyError::Misconfigured("a share is malformed".to_owned()))?;
        shares.push(share);
    }
    let distinct: std::collections::BTreeSet<u8> = shares.iter().map(|s| s.x.0).collect();
    if distinct.len() < usize::from(threshold) {
        return Err(KeyError::Misconfigured(format!(
            "{} distinct shares given, {threshold} needed",
            distinct.len()
        )));
    }
    let secret = Zeroizing::new(
        blahaj::Sharks(threshold)
            .recover(shares.iter())
            .map_err(|_| KeyError::UnsealFailed)?,
    );
    let arr: [u8; 32] = secret
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::UnsealFailed)?;
    Ok(Zeroizing::new(arr))
}

fn header_aad(header: &UnsealHeader) -> Result<Vec<u8>, KeyError> {
    let mut aad = FILE_FORMAT.as_bytes().to_vec();
    aad.push(0);
    aad.extend(
        serde_json::to_vec(header)
            .map_err(|_| KeyError::Provider("encoding the unseal header failed".to_owned()))?,
    );
    Ok(aad)
}

/// `fingerprint(32) | audit(32) | count u32 BE | count × (version u32 BE | kek(32))`
fn encode_keys(keys: &Keys) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(68 + keys.keks.len() * 36));
    out.extend_from_slice(keys.fingerprint.as_ref());
    out.extend_from_slice(keys.audit.as_ref());
    let count = u32::try_from(keys.keks.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for (version, kek) in &keys.keks {
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(kek.as_ref());
    }
    out
}

fn decode_keys(plain: &[u8]) -> Result<Keys, KeyError> {
    fn take<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], KeyError> {
        let (head, tail) = rest.split_at_checked(N).ok_or(KeyError::UnsealFailed)?;
        *rest = tail;
        head.try_into().map_err(|_| KeyError::UnsealFailed)
    }
    let mut rest = plain;
    let fingerprint = Zeroizing::new(take::<32>(&mut rest)?);
    let audit = Zeroizing::new(take::<32>(&mut rest)?);
    let count = u32::from_be_bytes(take::<4>(&mut rest)?);
    let mut keks = BTreeMap::new();
    for _ in 0..count {
        let version = u32::from_be_bytes(take::<4>(&mut rest)?);
        keks.insert(version, Zeroizing::new(take::<32>(&mut rest)?));
    }
    if !rest.is_empty() || keks.is_empty() {
        return Err(KeyError::UnsealFailed);
    }
    Ok(Keys {
        keks,
        fingerprint,
        audit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::OsRandom;

    /// Cheap argon2id costs: the tests exercise the plumbing, not the KDF.
    const FAST: KdfParams = KdfParams {
        m_cost_kib: 256,
        t_cost: 1,
        p_cost: 1,
    };

    fn pass(s: &str) -> SecretString {
        SecretString::new(s.to_owned())
    }

    fn rng() -> Arc<dyn Random> {
        Arc::new(OsRandom)
    }

    #[test]
    fn production_mode_refuses_the_software_provider() {
        let dir = tempfile::tempdir().unwrap();
        let err = SoftwareProvider::init_with_passphrase(
            Mode::Production,
            &dir.path().join("kek.json"),
            &pass("correct horse battery"),
            FAST,
            rng(),
        )
        .unwrap_err();
        assert!(matches!(&err, KeyError::Misconfigured(m) if m.contains("development")));
        assert!(!dir.path().join("kek.json").exists());
        assert!(ensure_allowed(Mode::Development).is_ok());
    }

    #[tokio::test]
    async fn passphrase_round_trip_and_wrong_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.json");
        let p = pass("correct horse battery");
        let provider =
            SoftwareProvider::init_with_passphrase(Mode::Development, &path, &p, FAST, rng())
                .unwrap();
        let kcv = provider.kek_check_value(KekVersion(1)).await.unwrap();
        let dek = provider.generate_data_key(KekVersion(1)).await.unwrap();
        let fp = provider
            .fingerprint("acme", b"4111111111111111")
            .await
            .unwrap();
        drop(provider);

        // The file never holds key material in clear.
        let file = std::fs::read(&path).unwrap();
        assert!(!file.windows(8).any(|w| w == &dek.key.expose_secret()[..8]));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        let reopened =
            SoftwareProvider::open(Mode::Development, &path, &Unseal::Passphrase(p), rng())
                .unwrap();
        assert_eq!(reopened.kek_check_value(KekVersion(1)).await.unwrap(), kcv);
        let unwrapped = reopened.unwrap_data_key(&dek.wrapped).await.unwrap();
        assert_eq!(unwrapped.expose_secret(), dek.key.expose_secret());
        assert_eq!(
            reopened
                .fingerprint("acme", b"4111111111111111")
                .await
                .unwrap(),
            fp
        );

        let wrong = SoftwareProvider::open(
            Mode::Development,
            &path,
            &Unseal::Passphrase(pass("incorrect horse battery")),
            rng(),
        );
        assert!(matches!(wrong, Err(KeyError::UnsealFailed)));
        // init refuses to overwrite.
        assert!(
            SoftwareProvider::init_with_passphrase(
                Mode::Development,
                &path,
                &pass("correct horse battery"),
                FAST,
                rng()
            )
            .is_err()
        );
    }

    #[tokio::test]
    async fn shamir_shares_unseal_with_threshold_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.json");
        let (provider, shares) =
            SoftwareProvider::init_with_shares(Mode::Development, &path, 3, 5, rng()).unwrap();
        assert_eq!(shares.len(), 5);
        let kcv = provider.kek_check_value(KekVersion(1)).await.unwrap();
        drop(provider);

        let some = |idx: &[usize]| Unseal::Shares(idx.iter().map(|i| shares[*i].clone()).collect());
        let ok =
            SoftwareProvider::open(Mode::Development, &path, &some(&[4, 1, 2]), rng()).unwrap();
        assert_eq!(ok.kek_check_value(KekVersion(1)).await.unwrap(), kcv);

        let too_few = SoftwareProvider::open(Mode::Development, &path, &some(&[0, 3]), rng());
        assert!(matches!(&too_few, Err(KeyError::Misconfigured(m)) if m.contains("3 needed")));
        // The same share twice does not count twice.
        let repeated = SoftwareProvider::open(Mode::Development, &path, &some(&[0, 0, 3]), rng());
        assert!(matches!(repeated, Err(KeyError::Misconfigured(_))));
        // A tampered share yields the wrong key and fails authentication.
        let mut bad = shares[2].expose_secret().to_owned();
        let last = bad.pop().unwrap();
        bad.push(if last == '0' { '1' } else { '0' });
        let tampered = Unseal::Shares(vec![shares[0].clone(), shares[1].clone(), pass(&bad)]);
        assert!(matches!(
            SoftwareProvider::open(Mode::Development, &path, &tampered, rng()),
            Err(KeyError::UnsealFailed)
        ));
        assert!(!format!("{tampered:?}").contains(SHARE_PREFIX));
    }

    #[tokio::test]
    async fn rotation_rewraps_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.json");
        let p = pass("correct horse battery");
        let provider =
            SoftwareProvider::init_with_passphrase(Mode::Development, &path, &p, FAST, rng())
                .unwrap();
        let dek = provider.generate_data_key(KekVersion(1)).await.unwrap();
        let v2 = provider.create_kek().await.unwrap();
        assert_eq!(v2, KekVersion(2));
        let rewrapped = provider.rewrap_data_key(&dek.wrapped, v2).await.unwrap();
        assert_eq!(rewrapped.kek, v2);
        assert_ne!(rewrapped.bytes, dek.wrapped.bytes);
        provider.destroy_kek(KekVersion(1)).await.unwrap();
        assert_eq!(
            provider.unwrap_data_key(&dek.wrapped).await.unwrap_err(),
            KeyError::NotFound("voltvault-kek-v1".to_owned())
        );
        assert_eq!(
            provider.destroy_kek(v2).await.unwrap_err().code(),
            "key_provider_misconfigured"
        );
        drop(provider);
        let reopened =
            SoftwareProvider::open(Mode::Development, &path, &Unseal::Passphrase(p), rng())
                .unwrap();
        assert_eq!(reopened.kek_versions().await.unwrap(), vec![v2]);
        let back = reopened.unwrap_data_key(&rewrapped).await.unwrap();
        assert_eq!(back.expose_secret(), dek.key.expose_secret());
        // A wrapped key altered in storage is rejected.
        let mut altered = rewrapped.clone();
        altered.bytes[3] ^= 0x80;
        assert_eq!(
            reopened.unwrap_data_key(&altered).await.unwrap_err(),
            KeyError::IntegrityFailure
        );
    }

    #[tokio::test]
    async fn fingerprints_are_per_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let provider = SoftwareProvider::init_with_passphrase(
            Mode::Development,
            &dir.path().join("kek.json"),
            &pass("correct horse battery"),
            FAST,
            rng(),
        )
        .unwrap();
        let a1 = provider
            .fingerprint("acme", b"4111111111111111")
            .await
            .unwrap();
        let a2 = provider
            .fingerprint("acme", b"4111111111111111")
            .await
            .unwrap();
        let b = provider
            .fingerprint("beta", b"4111111111111111")
            .await
            .unwrap();
        assert_eq!(a1, a2);
        assert_ne!(a1, b);
        assert_ne!(provider.audit_mac(b"x").await.unwrap(), [0u8; 32]);
    }
}
