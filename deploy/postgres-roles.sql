-- PostgreSQL roles for voltvault, step 1 of 2. Run once as a superuser:
--
--   psql -v ON_ERROR_STOP=1 -d voltvault -f deploy/postgres-roles.sql
--   psql -d voltvault -c 'ALTER DATABASE voltvault OWNER TO voltvault_owner'
--   psql -d voltvault -c 'ALTER SCHEMA public OWNER TO voltvault_owner'
--
-- Then run `voltvault migrate` as voltvault_owner (a configuration whose
-- database.url names that role) and apply deploy/postgres-grants.sql.
-- voltvault_owner owns the schema; the service runs with
-- migrate_on_start = false and logs in as voltvault.

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
