//! SoftHSM2 tokens for tests, shared by unit tests here and, through the
//! `testing` feature, by the integration tests in `tests/`.
//!
//! PKCS#11 allows one `C_Initialize` per process and SoftHSM reads
//! `SOFTHSM2_CONF` only then, so every test in a binary shares one module
//! handle and one configuration, and isolation comes from a fresh token per
//! test (unique label, own PINs). The crate forbids `unsafe`, which
//! `std::env::set_var` needs in Rust 2024, so the variable is set for test
//! processes by `.cargo/config.toml` (`[env]`, overridable from outside) and
//! this module writes the file it names on first use: token directory beside
//! it, no system tokens ever touched.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

use super::pkcs11::{Pkcs11Config, Pkcs11Provider, module};
use super::{KeyCheckValue, KeyError};
use crate::clock::{OsRandom, Random};
use crate::secret::SecretString;

pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const SO_PIN: &str = "so-pin-for-tests";
const USER_PIN: &str = "user-pin-for-tests";

/// Whether the SoftHSM2 module is installed.
pub fn softhsm_available() -> bool {
    Path::new(SOFTHSM_MODULE).exists()
}

/// The SoftHSM configuration of this process, written on first use.
pub fn softhsm_conf() -> &'static Path {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        let conf = PathBuf::from(std::env::var_os("SOFTHSM2_CONF").expect(
            "SOFTHSM2_CONF is not set: run tests through cargo (.cargo/config.toml sets it)",
        ));
        let dir = conf.parent().expect("SOFTHSM2_CONF has a parent directory");
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).expect("create SoftHSM token directory");
        if !conf.exists() {
            // Write-then-rename: test binaries may start side by side.
            let text = format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            );
            let tmp = dir.join(format!("softhsm2.conf.{}", std::process::id()));
            std::fs::write(&tmp, text).expect("write SoftHSM configuration");
            std::fs::rename(&tmp, &conf).expect("install SoftHSM configuration");
        }
        conf
    })
}

/// A token of its own for one test. Deleted from the token directory on drop.
#[derive(Debug)]
pub struct TestToken {
    pub label: String,
    pub pin: SecretString,
}

impl TestToken {
    /// Initializes a fresh token on SoftHSM's free slot and sets its user PIN.
    pub fn new() -> Self {
        static CREATE: Mutex<()> = Mutex::new(());
        static COUNTER: AtomicU32 = AtomicU32::new(0);

        softhsm_conf();
        let ctx = module(Path::new(SOFTHSM_MODULE)).expect("load SoftHSM");
        let mut salt = [0u8; 3];
        OsRandom.fill(&mut salt);
        // Token labels hold 32 characters.
        let label = format!(
            "vv{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            hex::encode(salt)
        );
        // One free slot at a time: two threads must not initialize the same one.
        let _guard = CREATE.lock().unwrap_or_else(|p| p.into_inner());
        let slot = ctx
            .get_all_slots()
            .expect("list slots")
            .into_iter()
            .find(|s| {
                ctx.get_token_info(*s)
                    .map(|i| !i.token_initialized())
                    .unwrap_or(false)
            })
            .expect("SoftHSM offers a free slot");
        let so_pin = AuthPin::new(SO_PIN.into());
        ctx.init_token(slot, &so_pin, &label).expect("init token");
        // The token moves to a new slot id once initialized; find it by label.
        let slot = ctx
            .get_slots_with_token()
            .expect("list slots")
            .into_iter()
            .find(|s| {
                ctx.get_token_info(*s)
                    .map(|i| i.label().trim_end() == label)
                    .unwrap_or(false)
            })
            .expect("the new token is listed");
        let session = ctx.open_rw_session(slot).expect("open SO session");
        session
            .login(UserType::So, Some(&so_pin))
            .expect("SO login");
        session
            .init_pin(&AuthPin::new(USER_PIN.into()))
            .expect("set user PIN");
        session.logout().expect("SO logout");
        Self {
            label,
            pin: SecretString::new(USER_PIN.to_owned()),
        }
    }

    pub fn config(&self) -> Pkcs11Config {
        Pkcs11Config::new(SOFTHSM_MODULE, self.label.clone(), self.pin.clone())
    }

    pub async fn provider(&self) -> Pkcs11Provider {
        Pkcs11Provider::connect(self.config())
            .await
            .expect("connect to test token")
    }

    /// A provider on this token with `keys init` done.
    pub async fn initialized(&self) -> Result<(Pkcs11Provider, KeyCheckValue), KeyError> {
        let provider = self.provider().await;
        let kcv = provider.init_token_objects().await?;
        Ok((provider, kcv))
    }
}

impl Default for TestToken {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestToken {
    fn drop(&mut self) {
        let _ = std::process::Command::new("softhsm2-util")
            .args(["--delete-token", "--token", &self.label])
            .env("SOFTHSM2_CONF", softhsm_conf())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
