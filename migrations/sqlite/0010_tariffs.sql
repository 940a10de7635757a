-- Published tariff versions (OCPI 2.2.1 documents). A version is never
-- changed once stored: a new price is a new version, and a session keeps
-- the version it started with.
CREATE TABLE tariffs (
    tenant_id  BLOB NOT NULL REFERENCES tenants(id),
    id         TEXT NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    document   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id, version)
);

CREATE TRIGGER tariffs_no_update BEFORE UPDATE ON tariffs
BEGIN
    SELECT RAISE(ABORT, 'tariff versions are immutable');
END;
CREATE TRIGGER tariffs_no_delete BEFORE DELETE ON tariffs
BEGIN
    SELECT RAISE(ABORT, 'tariff versions are immutable');
END;
