-- Webhook endpoints per tenant and the outbox of deliveries to them.
-- The signing secret is kept sealed (AES-256-GCM under the auth pepper's
-- sealing key, bound to tenant and endpoint), never in clear. Payloads
-- name sessions and amounts only: never card data.
CREATE TABLE webhooks (
    id            UUID PRIMARY KEY,
    tenant_id     UUID NOT NULL REFERENCES tenants(id),
    url           TEXT NOT NULL,
    -- Subscribed event types, comma separated (`session.completed,payment.failed`).
    events        TEXT NOT NULL,
    secret_sealed BYTEA NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id);

-- One row per event and endpoint. `next_attempt_at` doubles as the lease:
-- a node claims a due row by moving it forward (compare-and-set), so two
-- nodes never send one delivery at the same time, and a crashed node's
-- claim runs out by itself.
CREATE TABLE webhook_deliveries (
    id              UUID PRIMARY KEY,
    webhook_id      UUID NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    tenant_id       UUID NOT NULL REFERENCES tenants(id),
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL CHECK (attempts >= 0),
    last_status     INTEGER,
    last_error      TEXT,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    -- An event reaches an endpoint once, however often it is emitted.
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);
