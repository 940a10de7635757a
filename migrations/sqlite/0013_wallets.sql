-- Prepaid wallets: one per account, in one currency, amounts in minor units.
-- `reserved` is what open sessions hold; `balance - reserved` is available.
-- The CHECKs are the last line: a debit that would overdraw fails here.
CREATE TABLE wallets (
    account_id            BLOB PRIMARY KEY REFERENCES accounts(id),
    tenant_id             BLOB NOT NULL REFERENCES tenants(id),
    currency              TEXT NOT NULL,
    balance               INTEGER NOT NULL CHECK (balance >= 0),
    reserved              INTEGER NOT NULL CHECK (reserved >= 0 AND reserved <= balance),
    low_balance_threshold INTEGER NOT NULL CHECK (low_balance_threshold >= 0),
    -- Whether tap and account sessions pay from the wallet instead of a card.
    pays_sessions         BOOLEAN NOT NULL,
    -- Set when a debit took the balance below the threshold and the
    -- wallet.low_balance event was queued; cleared by a credit that lifts the
    -- balance to the threshold again. `low_balance_notices` numbers the events.
    low_balance_notified  BOOLEAN NOT NULL,
    low_balance_notices   INTEGER NOT NULL CHECK (low_balance_notices >= 0),
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
);

-- A session's reservation on a wallet (the wallet's "hold").
CREATE TABLE wallet_holds (
    id          TEXT PRIMARY KEY,
    account_id  BLOB NOT NULL REFERENCES wallets(account_id),
    -- The payment session it is for; one hold per session.
    reference   TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL CHECK (state IN ('authorized', 'captured', 'voided')),
    amount      INTEGER NOT NULL CHECK (amount > 0),
    captured    INTEGER NOT NULL CHECK (captured >= 0 AND captured <= amount),
    refunded    INTEGER NOT NULL CHECK (refunded >= 0 AND refunded <= captured),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX wallet_holds_by_account ON wallet_holds (account_id);

-- The ledger: append-only. `entry_key` is the operation's idempotency key,
-- so a retried operation is one entry.
CREATE TABLE wallet_entries (
    id             BLOB PRIMARY KEY,
    account_id     BLOB NOT NULL REFERENCES wallets(account_id),
    entry_key      TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL
        CHECK (kind IN ('top_up', 'hold', 'increment', 'capture', 'release', 'refund')),
    amount         INTEGER NOT NULL CHECK (amount >= 0),
    balance_after  INTEGER NOT NULL CHECK (balance_after >= 0),
    reserved_after INTEGER NOT NULL CHECK (reserved_after >= 0),
    -- A session id or a top-up id.
    reference      TEXT NOT NULL,
    created_at     TEXT NOT NULL
);
CREATE INDEX wallet_entries_by_account ON wallet_entries (account_id, created_at);

CREATE TRIGGER wallet_entries_no_update BEFORE UPDATE ON wallet_entries
BEGIN
    SELECT RAISE(ABORT, 'wallet entries are append-only');
END;
CREATE TRIGGER wallet_entries_no_delete BEFORE DELETE ON wallet_entries
BEGIN
    SELECT RAISE(ABORT, 'wallet entries are append-only');
END;
