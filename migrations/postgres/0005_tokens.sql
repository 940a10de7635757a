-- Vaulted tokens. Card data only as a sealed record (AES-256-GCM under a
-- wrapped data key); NULL once the token is deleted (crypto-shredded).
CREATE TABLE tokens (
    tenant_id     UUID NOT NULL REFERENCES tenants(id),
    token         TEXT NOT NULL,
    format        TEXT NOT NULL CHECK (format IN ('random', 'ff1')),
    brand         TEXT NOT NULL,
    last4         TEXT NOT NULL,
    bin           TEXT,
    exp_month     INTEGER NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year      INTEGER NOT NULL,
    fingerprint   BYTEA NOT NULL,
    data_key_id   BIGINT,
    record_format INTEGER,
    nonce         BYTEA,
    ciphertext    BYTEA,
    metadata      TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ,
    deleted_at    TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, token),
    CHECK ((data_key_id IS NULL) = (ciphertext IS NULL))
);

CREATE INDEX tokens_fingerprint ON tokens (tenant_id, fingerprint) WHERE deleted_at IS NULL;
CREATE INDEX tokens_expiry ON tokens (expires_at) WHERE expires_at IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX tokens_data_key ON tokens (data_key_id) WHERE data_key_id IS NOT NULL;

CREATE TABLE token_policies (
    tenant_id     UUID PRIMARY KEY REFERENCES tenants(id),
    keep_bin      BOOLEAN NOT NULL DEFAULT FALSE,
    deterministic BOOLEAN NOT NULL DEFAULT FALSE
);
