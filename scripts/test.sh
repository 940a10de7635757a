#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what the tests
# need when it is missing, starts PostgreSQL when it is not answering, then
# runs formatting, lints and every test (SQLite, PostgreSQL, SoftHSM2,
# localstripe, aiosmtpd).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  log "installing $*"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- tools the tests use -----------------------------------------------------
missing=()
command -v softhsm2-util >/dev/null || missing+=(softhsm2)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v pg_isready >/dev/null || missing+=(postgresql-client)
[ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ] || missing+=(postgresql)
# The Stripe connector's default trust roots.
[ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
if [ ${#missing[@]} -gt 0 ]; then
  # shellcheck disable=SC2207
  apt_install $(printf '%s\n' "${missing[@]}" | sort -u)
fi
# localstripe: the Stripe-compatible server the acquirer connector tests run against.
command -v python3 >/dev/null || apt_install python3
if ! python3 -c 'import localstripe' 2>/dev/null; then
  log "installing localstripe"
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  # Debian's own Python refuses installs outside a venv (PEP 668); a user install will do.
  python3 -m pip install -q localstripe 2>/dev/null \
    || python3 -m pip install -q --user --break-system-packages localstripe
fi
# aiosmtpd: the real SMTP server the mail tests send to (tests/smtp_sink.py).
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  log "installing aiosmtpd"
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  python3 -m pip install -q aiosmtpd 2>/dev/null \
    || python3 -m pip install -q --user --break-system-packages aiosmtpd
fi
export PATH="$HOME/.local/bin:$PATH"
command -v localstripe >/dev/null || { echo "localstripe is installed but not on PATH"; exit 1; }

# --- PostgreSQL at 127.0.0.1:5432 ---------------------------------------------
PGURL_HOST=127.0.0.1
if ! pg_isready -q -h "$PGURL_HOST" -p 5432; then
  version=$(ls /etc/postgresql | sort -n | tail -1)
  log "starting PostgreSQL $version"
  hba=/etc/postgresql/$version/main/pg_hba.conf
  # A cluster installed just now asks for passwords on TCP; tests connect as postgres with trust on loopback.
  if ! as_root grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h "$PGURL_HOST" -p 5432 && break; sleep 1; done
  pg_isready -h "$PGURL_HOST" -p 5432
fi
# Databases left behind by an interrupted run.
psql -qAtX -h "$PGURL_HOST" -U postgres -d postgres \
  -c "select 'DROP DATABASE IF EXISTS ' || datname || ' WITH (FORCE);' from pg_database where datname like 'vv_test_%'" \
  | psql -qX -h "$PGURL_HOST" -U postgres -d postgres >/dev/null

# --- the checks ---------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
log "cargo test"
# In CI, a failing test's message and line must survive a shortened log; a
# backtrace through the test runtime's frames pushes them out of it.
if [ "${CI:-}" = true ]; then export RUST_BACKTRACE=0; fi
cargo test --all-targets --locked
