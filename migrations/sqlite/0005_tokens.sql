-- Vaulted tokens. Card data only as a sealed record (AES-256-GCM under a
-- wrapped data key); NULL once the token is deleted (crypto-shredded).
CREATE TABLE tokens (
    tenant_id     BLOB NOT NULL REFERENCES tenants(id),
    token         TEXT NOT NULL,
    format        TEXT NOT NULL CHECK (format IN ('random', 'ff1')),
    brand         TEXT NOT NULL,
    last4         TEXT NOT NULL,
    bin           TEXT,
    exp_month     INTEGER NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year      INTEGER NOT NULL,
    fingerprint   BLOB NOT NULL,
    data_key_id   INTEGER,
    record_format INTEGER,
    nonce         BLOB,
    ciphertext    BLOB,
    metadata      TEXT,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    deleted_at    TEXT,
    PRIMARY KEY (tenant_id, token),
    CHECK ((data_key_id IS NULL) = (ciphertext IS NULL))
) STRICT;

CREATE INDEX tokens_fingerprint ON tokens (tenant_id, fingerprint) WHERE deleted_at IS NULL;
CREATE INDEX tokens_expiry ON tokens (expires_at) WHERE expires_at IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX tokens_data_key ON tokens (data_key_id) WHERE data_key_id IS NOT NULL;

CREATE TABLE token_policies (
    tenant_id     BLOB PRIMARY KEY NOT NULL REFERENCES tenants(id),
    keep_bin      INTEGER NOT NULL DEFAULT 0,
    deterministic INTEGER NOT NULL DEFAULT 0
) STRICT;
