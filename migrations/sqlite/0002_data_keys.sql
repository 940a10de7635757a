-- The key registry. Data keys are stored only wrapped under a KEK that
-- lives in the HSM; a KEK row holds its check value, never the key.
CREATE TABLE key_encryption_keys (
    version      INTEGER PRIMARY KEY NOT NULL CHECK (version > 0),
    label        TEXT NOT NULL UNIQUE,
    check_value  BLOB NOT NULL CHECK (length(check_value) = 3),
    state        TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retiring', 'destroyed')),
    created_at   TEXT NOT NULL
) STRICT;

CREATE UNIQUE INDEX key_encryption_keys_one_active
    ON key_encryption_keys (state) WHERE state = 'active';

-- AUTOINCREMENT: an id is bound into record AAD and must never be reused.
CREATE TABLE data_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    state        TEXT NOT NULL CHECK (state IN ('active', 'decrypt_only', 'retired')),
    wrapped      BLOB NOT NULL,
    kek_version  INTEGER NOT NULL REFERENCES key_encryption_keys(version),
    created_at   TEXT NOT NULL,
    use_count    INTEGER NOT NULL DEFAULT 0 CHECK (use_count >= 0)
) STRICT;

CREATE UNIQUE INDEX data_keys_one_active ON data_keys (state) WHERE state = 'active';
CREATE INDEX data_keys_kek ON data_keys (kek_version);
