-- PostgreSQL roles for voltvault. Run once as a superuser, in the service's
-- database, after `voltvault migrate` has run as voltvault_owner:
--
--   psql -v ON_ERROR_STOP=1 -d voltvault -f deploy/postgres-roles.sql
--
-- voltvault_owner owns the schema and runs migrations (`voltvault migrate`
-- with migrate_on_start = false in the service's configuration). The
-- service logs in as voltvault and may only INSERT and SELECT the audit
-- tables; the only way it can remove audit records is audit_purge(), which
-- runs as the owner and refuses anything not archived, sealed and older
-- than the queryable window. Triggers reject UPDATE, DELETE and TRUNCATE
-- even for the owner.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'voltvault_owner') THEN
        -- Logs in only to run migrations.
        CREATE ROLE voltvault_owner LOGIN NOSUPERUSER;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'voltvault') THEN
        -- Set its password with \password voltvault; it is never written here.
        CREATE ROLE voltvault LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO voltvault;

-- Ordinary tables: the service reads and writes them.
GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, idempotency_keys TO voltvault;

-- The audit trail: append and read, nothing else.
REVOKE ALL ON audit_events, audit_checkpoints, audit_archives FROM voltvault;
GRANT SELECT, INSERT ON audit_events, audit_checkpoints, audit_archives TO voltvault;
GRANT EXECUTE ON FUNCTION audit_purge(TEXT, BIGINT) TO voltvault;

-- The migration bookkeeping is the owner's alone.
REVOKE ALL ON _sqlx_migrations FROM voltvault;
