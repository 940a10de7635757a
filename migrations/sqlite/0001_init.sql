-- Tenants and idempotency keys: the ground every other table stands on.
CREATE TABLE tenants (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE idempotency_keys (
    tenant_id     BLOB NOT NULL REFERENCES tenants(id),
    principal     TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    request_hash  BLOB NOT NULL,
    status_code   INTEGER,
    response_body BLOB,
    created_at    TEXT NOT NULL,
    completed_at  TEXT,
    PRIMARY KEY (tenant_id, principal, idem_key)
) STRICT;

CREATE INDEX idempotency_keys_completed ON idempotency_keys (completed_at);
