//! A real SMTP server (aiosmtpd, tests/smtp_sink.py) on a port of its own,
//! writing each accepted message to a directory.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const SMTP_USER: &str = "voltvault-relay";

/// A free port on loopback (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The sink, killed when dropped.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts the sink on `port` (0: a port the kernel picks, which no
    /// other test can take first), accepting `SMTP_USER` with `password`.
    pub async fn start(port: u16, password: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args([&port.to_string(), dir.path().to_str().unwrap(), SMTP_USER])
            .env("SMTP_SINK_PASSWORD", password)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd must be installed (scripts/test.sh installs it)");
        // Waits for "ready <port>" on its stdout.
        let stdout = child.stdout.take().unwrap();
        let ready = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut line = String::new();
            std::io::BufReader::new(stdout).read_line(&mut line).ok();
            line
        });
        let line = tokio::time::timeout(Duration::from_secs(20), ready)
            .await
            .expect("the SMTP sink starts")
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!("the SMTP sink did not start (is aiosmtpd installed?): {line:?}")
            });
        Self { child, port, dir }
    }

    /// The messages accepted so far, oldest first, as raw text.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sink and the `[notifications.smtp]` section that sends to it.
pub struct Relay {
    pub sink: SmtpSink,
    pub config: voltvault::config::SmtpConfig,
    _dir: tempfile::TempDir,
}

impl Relay {
    pub async fn start() -> Self {
        let password = "relay-pass-2026";
        let sink = SmtpSink::start(0, password).await;
        let port = sink.port;
        let dir = tempfile::tempdir().unwrap();
        let password_file = dir.path().join("smtp-password");
        voltvault::devpki::write_file(&password_file, password, 0o600).unwrap();
        let config = voltvault::config::SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: voltvault::config::SmtpTls::None,
            username: Some(SMTP_USER.into()),
            password_file: Some(password_file),
            from: "Example Charging <receipts@example.com>".into(),
            ca_file: None,
            timeout_secs: 20,
        };
        Self {
            sink,
            config,
            _dir: dir,
        }
    }

    /// The subjects of the messages accepted so far, for failure messages.
    pub fn subjects(&self) -> Vec<Option<String>> {
        self.sink.messages().iter().map(|m| subject(m)).collect()
    }

    /// Waits up to 30 s (a loaded CI machine is slow) for `n` messages whose
    /// subject contains `part`, and half a second more for any beyond them;
    /// returns them all.
    pub async fn wait_for(&self, part: &str, n: usize) -> Vec<String> {
        let matching = || {
            self.sink
                .messages()
                .into_iter()
                .filter(|m| subject(m).is_some_and(|s| s.contains(part)))
                .collect::<Vec<_>>()
        };
        for _ in 0..600 {
            if matching().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        matching()
    }
}

/// The unfolded `Subject:` header of a raw message.
pub fn subject(raw: &str) -> Option<String> {
    let headers = raw.split("\r\n\r\n").next()?;
    let unfolded = headers.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .map(str::to_owned)
}

/// The body of a raw message, with quoted-printable soft breaks and `=XX`
/// escapes undone when the message says it is quoted-printable.
pub fn body(raw: &str) -> String {
    let (headers, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    if !headers
        .to_ascii_lowercase()
        .contains("content-transfer-encoding: quoted-printable")
    {
        return body.replace("\r\n", "\n");
    }
    let joined = body.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}
