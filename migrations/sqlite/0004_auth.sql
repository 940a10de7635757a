-- Principals and credentials: API keys, staff users with password history,
-- login challenges and sessions (keyed hashes only), charger CAs and the
-- certificates revoked under them, and when chargers were last seen.
CREATE TABLE api_keys (
    key_id        TEXT PRIMARY KEY NOT NULL,
    tenant_id     BLOB NOT NULL REFERENCES tenants(id),
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    secret_hash   BLOB NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    revoked_at    TEXT,
    last_used_at  TEXT
) STRICT;
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE staff_users (
    id               BLOB PRIMARY KEY NOT NULL,
    tenant_id        BLOB NOT NULL REFERENCES tenants(id),
    username         TEXT NOT NULL UNIQUE,
    role             TEXT NOT NULL,
    password_hash    TEXT NOT NULL,
    totp_sealed      BLOB NOT NULL,
    totp_last_step   INTEGER NOT NULL,
    failed_attempts  INTEGER NOT NULL,
    locked_until     TEXT,
    disabled_at      TEXT,
    created_at       TEXT NOT NULL,
    last_login_at    TEXT
) STRICT;
CREATE INDEX staff_users_tenant ON staff_users (tenant_id);

CREATE TABLE staff_password_history (
    user_id        BLOB NOT NULL REFERENCES staff_users(id),
    password_hash  TEXT NOT NULL,
    set_at         TEXT NOT NULL
) STRICT;
CREATE INDEX staff_password_history_user ON staff_password_history (user_id, set_at);

CREATE TABLE staff_challenges (
    challenge_hash  BLOB PRIMARY KEY NOT NULL,
    user_id         BLOB NOT NULL REFERENCES staff_users(id),
    expires_at      TEXT NOT NULL
) STRICT;

CREATE TABLE staff_sessions (
    token_hash        BLOB PRIMARY KEY NOT NULL,
    user_id           BLOB NOT NULL REFERENCES staff_users(id),
    created_at        TEXT NOT NULL,
    last_seen_at      TEXT NOT NULL,
    expires_at        TEXT NOT NULL,
    second_factor_at  TEXT NOT NULL
) STRICT;
CREATE INDEX staff_sessions_user ON staff_sessions (user_id);

CREATE TABLE charger_cas (
    id          BLOB PRIMARY KEY NOT NULL,
    tenant_id   BLOB NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    cert_der    BLOB NOT NULL,
    sha256_hex  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
) STRICT;

CREATE TABLE charger_cert_revocations (
    ca_id       BLOB NOT NULL REFERENCES charger_cas(id),
    serial_hex  TEXT NOT NULL,
    revoked_at  TEXT NOT NULL,
    PRIMARY KEY (ca_id, serial_hex)
) STRICT;

CREATE TABLE chargers_seen (
    ca_id         BLOB NOT NULL REFERENCES charger_cas(id),
    tenant_id     BLOB NOT NULL REFERENCES tenants(id),
    identity      TEXT NOT NULL,
    last_used_at  TEXT NOT NULL,
    PRIMARY KEY (ca_id, identity)
) STRICT;

-- The latest CRL imported for a charger CA (its signature checked on import).
CREATE TABLE charger_ca_crls (
    ca_id       BLOB PRIMARY KEY NOT NULL REFERENCES charger_cas(id),
    crl_der     BLOB NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;
