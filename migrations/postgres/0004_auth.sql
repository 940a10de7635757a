-- Principals and credentials: API keys, staff users with password history,
-- login challenges and sessions (keyed hashes only), charger CAs and the
-- certificates revoked under them, and when chargers were last seen.
CREATE TABLE api_keys (
    key_id        TEXT PRIMARY KEY,
    tenant_id     UUID NOT NULL REFERENCES tenants(id),
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    secret_hash   BYTEA NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE staff_users (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants(id),
    username         TEXT NOT NULL UNIQUE,
    role             TEXT NOT NULL,
    password_hash    TEXT NOT NULL,
    totp_sealed      BYTEA NOT NULL,
    totp_last_step   BIGINT NOT NULL,
    failed_attempts  BIGINT NOT NULL,
    locked_until     TIMESTAMPTZ,
    disabled_at      TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    last_login_at    TIMESTAMPTZ
);
CREATE INDEX staff_users_tenant ON staff_users (tenant_id);

CREATE TABLE staff_password_history (
    user_id        UUID NOT NULL REFERENCES staff_users(id),
    password_hash  TEXT NOT NULL,
    set_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX staff_password_history_user ON staff_password_history (user_id, set_at);

CREATE TABLE staff_challenges (
    challenge_hash  BYTEA PRIMARY KEY,
    user_id         UUID NOT NULL REFERENCES staff_users(id),
    expires_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE staff_sessions (
    token_hash        BYTEA PRIMARY KEY,
    user_id           UUID NOT NULL REFERENCES staff_users(id),
    created_at        TIMESTAMPTZ NOT NULL,
    last_seen_at      TIMESTAMPTZ NOT NULL,
    expires_at        TIMESTAMPTZ NOT NULL,
    second_factor_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX staff_sessions_user ON staff_sessions (user_id);

CREATE TABLE charger_cas (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    cert_der    BYTEA NOT NULL,
    sha256_hex  TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);

CREATE TABLE charger_cert_revocations (
    ca_id       UUID NOT NULL REFERENCES charger_cas(id),
    serial_hex  TEXT NOT NULL,
    revoked_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (ca_id, serial_hex)
);

CREATE TABLE chargers_seen (
    ca_id         UUID NOT NULL REFERENCES charger_cas(id),
    tenant_id     UUID NOT NULL REFERENCES tenants(id),
    identity      TEXT NOT NULL,
    last_used_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (ca_id, identity)
);

-- The latest CRL imported for a charger CA (its signature checked on import).
CREATE TABLE charger_ca_crls (
    ca_id       UUID PRIMARY KEY NOT NULL REFERENCES charger_cas(id),
    crl_der     BYTEA NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
