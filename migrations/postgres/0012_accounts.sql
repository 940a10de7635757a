-- Accounts for drivers and fleets, their payment methods (tokens only) and
-- the RFID cards that charge them. A driver account may be billed through a
-- fleet account of the same tenant.
CREATE TABLE accounts (
    id            UUID PRIMARY KEY,
    tenant_id     UUID NOT NULL REFERENCES tenants(id),
    kind          TEXT NOT NULL CHECK (kind IN ('driver', 'fleet')),
    name          TEXT NOT NULL,
    email         TEXT,
    fleet_id      UUID REFERENCES accounts(id),
    -- The token a tap or an account session charges; one of the methods below.
    default_token TEXT,
    created_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX accounts_by_tenant ON accounts (tenant_id, created_at, id);

CREATE TABLE account_payment_methods (
    account_id UUID NOT NULL REFERENCES accounts(id),
    token      TEXT NOT NULL,
    added_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, token)
);

-- ISO 14443 UIDs, upper-case hex. A UID names one card per tenant.
CREATE TABLE rfid_cards (
    tenant_id  UUID NOT NULL REFERENCES tenants(id),
    uid        TEXT NOT NULL,
    account_id UUID NOT NULL REFERENCES accounts(id),
    label      TEXT,
    status     TEXT NOT NULL CHECK (status IN ('active', 'blocked')),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, uid)
);
CREATE INDEX rfid_cards_by_account ON rfid_cards (account_id);

-- The account a session bills, when it was started by a tap or for an account.
ALTER TABLE payment_sessions ADD COLUMN account_id UUID REFERENCES accounts(id);
CREATE INDEX payment_sessions_by_account ON payment_sessions (account_id, created_at, id)
    WHERE account_id IS NOT NULL;
