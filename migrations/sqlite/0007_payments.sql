-- EV payment sessions: a hold at the acquirer, meter readings, capture.
-- Card data never appears here: a session names its card by token.
CREATE TABLE payment_sessions (
    id               BLOB PRIMARY KEY,
    tenant_id        BLOB NOT NULL REFERENCES tenants(id),
    created_by       TEXT NOT NULL,
    -- The Idempotency-Key of the request that opened it, so a retry finds it.
    idem_key         TEXT NOT NULL,
    evse_id          TEXT NOT NULL,
    connector_id     TEXT NOT NULL,
    tariff_id        TEXT NOT NULL,
    tariff_version   INTEGER NOT NULL,
    token            TEXT NOT NULL,
    acquirer         TEXT NOT NULL,
    currency         TEXT NOT NULL,
    hold_value       INTEGER NOT NULL CHECK (hold_value > 0),
    authorized_value INTEGER NOT NULL CHECK (authorized_value >= 0),
    cost_value       INTEGER NOT NULL CHECK (cost_value >= 0),
    energy_wh        INTEGER NOT NULL CHECK (energy_wh >= 0),
    captured_value   INTEGER CHECK (captured_value >= 0 AND captured_value <= authorized_value),
    refunded_value   INTEGER NOT NULL CHECK (refunded_value >= 0),
    status           TEXT NOT NULL,
    stop_requested   BOOLEAN NOT NULL,
    incremental      BOOLEAN NOT NULL,
    auth_ref         TEXT,
    -- The issuer's approval code, for the receipt.
    authorization_code TEXT,
    capture_ref      TEXT,
    decline_code     TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    ended_at         TEXT,
    revision         INTEGER NOT NULL,
    UNIQUE (tenant_id, created_by, idem_key),
    CHECK (refunded_value <= COALESCE(captured_value, 0))
);
CREATE INDEX payment_sessions_open ON payment_sessions (created_at)
    WHERE status IN ('authorized', 'charging');

CREATE TABLE payment_meter_readings (
    session_id BLOB NOT NULL REFERENCES payment_sessions(id),
    seq        INTEGER NOT NULL,
    at         TEXT NOT NULL,
    energy_wh  INTEGER NOT NULL CHECK (energy_wh >= 0),
    PRIMARY KEY (session_id, seq)
);

-- Every acquirer call is written here before it is made. Its key is the
-- acquirer's idempotency key, derived from the session, so a call sent
-- twice is the same call.
CREATE TABLE payment_intents (
    acquirer_key  TEXT PRIMARY KEY,
    session_id    BLOB NOT NULL REFERENCES payment_sessions(id),
    kind          TEXT NOT NULL CHECK (kind IN ('authorize', 'increment', 'capture', 'void', 'refund')),
    amount        INTEGER NOT NULL CHECK (amount >= 0),
    state         TEXT NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed')),
    error_code    TEXT,
    reason        TEXT,
    -- Who asked and with which Idempotency-Key, to release their claim after a crash.
    idem_principal TEXT,
    idem_key       TEXT,
    attempts      INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    -- Until then the node that wrote it owns it; afterwards recovery may.
    lease_until   TEXT NOT NULL
);
-- One acquirer call in flight per session at a time.
CREATE UNIQUE INDEX payment_intents_one_pending ON payment_intents (session_id) WHERE state = 'pending';
CREATE INDEX payment_intents_session ON payment_intents (session_id);
