-- Monthly invoices per account (a fleet's include its drivers' sessions).
-- Numbers are gapless per tenant: the counter moves in the transaction that
-- writes the invoice, so a failed issue leaves no hole. An invoice never
-- changes once issued, and a session is on one invoice at most.
CREATE TABLE invoice_counters (
    tenant_id UUID PRIMARY KEY REFERENCES tenants(id),
    last_seq  BIGINT NOT NULL CHECK (last_seq >= 1)
);

CREATE TABLE invoices (
    id             UUID PRIMARY KEY,
    tenant_id      UUID NOT NULL REFERENCES tenants(id),
    seq            BIGINT NOT NULL,
    number         TEXT NOT NULL,
    account_id     UUID NOT NULL REFERENCES accounts(id),
    period         TEXT NOT NULL,
    currency       TEXT NOT NULL,
    total_incl_vat BIGINT NOT NULL,
    -- The invoice as issued (lines, VAT summary, totals, parties), JSON.
    document       TEXT NOT NULL,
    issued_at      TIMESTAMPTZ NOT NULL,
    issued_by      TEXT NOT NULL,
    UNIQUE (tenant_id, seq),
    UNIQUE (tenant_id, number),
    UNIQUE (tenant_id, account_id, period)
);
CREATE INDEX invoices_by_issue ON invoices (tenant_id, issued_at, id);

CREATE TABLE invoice_lines (
    session_id UUID PRIMARY KEY REFERENCES payment_sessions(id),
    invoice_id UUID NOT NULL REFERENCES invoices(id)
);

CREATE FUNCTION invoices_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'issued invoices are immutable';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER invoices_no_change BEFORE UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION invoices_immutable();
CREATE TRIGGER invoice_lines_no_change BEFORE UPDATE OR DELETE ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION invoices_immutable();
