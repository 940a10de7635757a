-- Published tariff versions (OCPI 2.2.1 documents). A version is never
-- changed once stored: a new price is a new version, and a session keeps
-- the version it started with.
CREATE TABLE tariffs (
    tenant_id  UUID NOT NULL REFERENCES tenants(id),
    id         TEXT NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    document   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id, version)
);

CREATE FUNCTION tariffs_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'tariff versions are immutable';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER tariffs_no_update BEFORE UPDATE OR DELETE ON tariffs
    FOR EACH ROW EXECUTE FUNCTION tariffs_immutable();
