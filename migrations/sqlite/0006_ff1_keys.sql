-- One FF1 key per tenant, stored only wrapped (AES-KWP) under a KEK that
-- lives in the HSM, like a data key. FF1 token values are a function of
-- this key, so it is never replaced: `rotate-kek` rewraps it instead.
CREATE TABLE ff1_keys (
    tenant_id    BLOB PRIMARY KEY NOT NULL REFERENCES tenants(id),
    wrapped      BLOB NOT NULL,
    kek_version  INTEGER NOT NULL REFERENCES key_encryption_keys(version),
    created_at   TEXT NOT NULL
) STRICT;

CREATE INDEX ff1_keys_kek ON ff1_keys (kek_version);
