-- The e-mail outbox: one row per notification mail, sent by a worker on
-- every node through the configured SMTP relay with retries. A message
-- names a driver's address and amounts: never card data (MailQueue refuses
-- text that holds a card number). The text is cleared once the relay has
-- accepted the message; the row stays for deduplication and the log.
CREATE TABLE mail_outbox (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants(id),
    -- What the caller calls this notification (`receipt:<session>`): the
    -- same key queued twice is one mail.
    dedupe_key      TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL CHECK (attempts >= 0),
    -- A fixed code (`unavailable`, `rejected`, ...), never the relay's text.
    last_error      TEXT,
    -- Due time; while a node holds the row, when its lease runs out.
    next_attempt_at TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, dedupe_key)
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE state = 'pending';
