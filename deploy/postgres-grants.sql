-- PostgreSQL grants for voltvault, step 2 of 2 (see postgres-roles.sql).
-- Run as a superuser after each `voltvault migrate`:
--
--   psql -v ON_ERROR_STOP=1 -d voltvault -f deploy/postgres-grants.sql
--
-- The service role may only INSERT and SELECT the audit tables. Its one
-- way to remove audit records is audit_purge(), which runs as the owner and
-- refuses anything not archived, sealed and older than the 90-day
-- queryable window. Triggers reject UPDATE, DELETE and TRUNCATE even for
-- the owner.

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO voltvault;

-- Ordinary tables: the service reads and writes them.
GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, idempotency_keys TO voltvault;
-- The key registry (wrapped keys only), principals, vaulted tokens (sealed
-- records) and payment sessions.
GRANT SELECT, INSERT, UPDATE, DELETE ON
    key_encryption_keys, data_keys, ff1_keys,
    api_keys, staff_users, staff_password_history, staff_challenges, staff_sessions,
    charger_cas, charger_cert_revocations, chargers_seen, charger_ca_crls,
    tokens, token_policies,
    payment_sessions, payment_meter_readings, payment_intents
    TO voltvault;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO voltvault;
-- Published tariff versions never change: add and read only.
GRANT SELECT, INSERT ON tariffs TO voltvault;

-- The audit trail: append and read, nothing else.
REVOKE ALL ON audit_events, audit_checkpoints, audit_archives FROM voltvault;
GRANT SELECT, INSERT ON audit_events, audit_checkpoints, audit_archives TO voltvault;
GRANT EXECUTE ON FUNCTION audit_purge(TEXT, BIGINT) TO voltvault;

-- The migration bookkeeping is the owner's alone.
REVOKE ALL ON _sqlx_migrations FROM voltvault;

-- Webhook endpoints (secrets sealed) and their delivery outbox.
GRANT SELECT, INSERT, UPDATE, DELETE ON webhooks, webhook_deliveries TO voltvault;

-- Accounts, their payment methods (tokens) and RFID cards.
GRANT SELECT, INSERT, UPDATE, DELETE ON accounts, account_payment_methods, rfid_cards TO voltvault;

-- Invoices never change once issued: add and read only. The gapless
-- counter moves with each invoice.
GRANT SELECT, INSERT ON invoices, invoice_lines TO voltvault;
GRANT SELECT, INSERT, UPDATE ON invoice_counters TO voltvault;

-- The e-mail outbox: queued, claimed and settled, never deleted by the service.
GRANT SELECT, INSERT, UPDATE ON mail_outbox TO voltvault;

-- Prepaid wallets and their holds; the ledger is append and read only.
GRANT SELECT, INSERT, UPDATE ON wallets, wallet_holds TO voltvault;
GRANT SELECT, INSERT ON wallet_entries TO voltvault;
