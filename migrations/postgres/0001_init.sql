-- Tenants and idempotency keys: the ground every other table stands on.
CREATE TABLE tenants (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE idempotency_keys (
    tenant_id     UUID NOT NULL REFERENCES tenants(id),
    principal     TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    request_hash  BYTEA NOT NULL,
    status_code   INTEGER,
    response_body BYTEA,
    created_at    TIMESTAMPTZ NOT NULL,
    completed_at  TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, principal, idem_key)
);

CREATE INDEX idempotency_keys_completed ON idempotency_keys (completed_at);
