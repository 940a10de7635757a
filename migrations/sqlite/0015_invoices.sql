-- Monthly invoices per account (a fleet's include its drivers' sessions).
-- Numbers are gapless per tenant: the counter moves in the transaction that
-- writes the invoice, so a failed issue leaves no hole. An invoice never
-- changes once issued, and a session is on one invoice at most.
CREATE TABLE invoice_counters (
    tenant_id BLOB PRIMARY KEY REFERENCES tenants(id),
    last_seq  INTEGER NOT NULL CHECK (last_seq >= 1)
);

CREATE TABLE invoices (
    id             BLOB PRIMARY KEY,
    tenant_id      BLOB NOT NULL REFERENCES tenants(id),
    seq            INTEGER NOT NULL,
    number         TEXT NOT NULL,
    account_id     BLOB NOT NULL REFERENCES accounts(id),
    period         TEXT NOT NULL,
    currency       TEXT NOT NULL,
    total_incl_vat INTEGER NOT NULL,
    -- The invoice as issued (lines, VAT summary, totals, parties), JSON.
    document       TEXT NOT NULL,
    issued_at      TEXT NOT NULL,
    issued_by      TEXT NOT NULL,
    UNIQUE (tenant_id, seq),
    UNIQUE (tenant_id, number),
    UNIQUE (tenant_id, account_id, period)
);
CREATE INDEX invoices_by_issue ON invoices (tenant_id, issued_at, id);

CREATE TABLE invoice_lines (
    session_id BLOB PRIMARY KEY REFERENCES payment_sessions(id),
    invoice_id BLOB NOT NULL REFERENCES invoices(id)
);

CREATE TRIGGER invoices_no_update BEFORE UPDATE ON invoices
BEGIN
    SELECT RAISE(ABORT, 'issued invoices are immutable');
END;
CREATE TRIGGER invoices_no_delete BEFORE DELETE ON invoices
BEGIN
    SELECT RAISE(ABORT, 'issued invoices are immutable');
END;
CREATE TRIGGER invoice_lines_no_update BEFORE UPDATE ON invoice_lines
BEGIN
    SELECT RAISE(ABORT, 'issued invoices are immutable');
END;
CREATE TRIGGER invoice_lines_no_delete BEFORE DELETE ON invoice_lines
BEGIN
    SELECT RAISE(ABORT, 'issued invoices are immutable');
END;
