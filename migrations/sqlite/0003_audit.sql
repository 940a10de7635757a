-- The audit trail (PCI DSS 10); see the PostgreSQL migration for the design.
-- Whoever can write the database file can do anything to it, so here the
-- triggers guard against the service itself (a bug or an injected
-- statement), and the sealed checkpoints catch everything else.

CREATE TABLE audit_events (
    node_id      TEXT    NOT NULL,
    seq          INTEGER NOT NULL CHECK (seq > 0),
    version      INTEGER NOT NULL,
    at_us        INTEGER NOT NULL,
    event_type   TEXT    NOT NULL,
    actor_kind   TEXT    NOT NULL,
    actor_id     TEXT    NOT NULL,
    tenant_id    BLOB,
    outcome      TEXT    NOT NULL,
    origin       TEXT,
    resource     TEXT,
    request_id   TEXT,
    reason       TEXT,
    prev_hash    BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    record_hash  BLOB    NOT NULL CHECK (length(record_hash) = 32),
    PRIMARY KEY (node_id, seq)
) STRICT;

CREATE INDEX audit_events_at ON audit_events (at_us, node_id, seq);
CREATE INDEX audit_events_actor ON audit_events (actor_id, at_us);
CREATE INDEX audit_events_resource ON audit_events (resource, at_us);
CREATE INDEX audit_events_type ON audit_events (event_type, at_us);

CREATE TABLE audit_checkpoints (
    node_id      TEXT    NOT NULL,
    seq          INTEGER NOT NULL CHECK (seq > 0),
    record_hash  BLOB    NOT NULL CHECK (length(record_hash) = 32),
    at_us        INTEGER NOT NULL,
    key_id       TEXT    NOT NULL,
    seal         BLOB    NOT NULL CHECK (length(seal) = 32),
    PRIMARY KEY (node_id, seq)
) STRICT;

CREATE TABLE audit_archives (
    node_id      TEXT    NOT NULL,
    through_seq  INTEGER NOT NULL,
    archived_us  INTEGER NOT NULL,
    file_name    TEXT    NOT NULL,
    file_sha256  BLOB    NOT NULL CHECK (length(file_sha256) = 32),
    records      INTEGER NOT NULL,
    PRIMARY KEY (node_id, through_seq),
    FOREIGN KEY (node_id, through_seq) REFERENCES audit_checkpoints (node_id, seq)
) STRICT;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit tables are append-only'); END;

-- Only records an archive already holds may go (retention).
CREATE TRIGGER audit_events_delete_archived_only BEFORE DELETE ON audit_events
WHEN NOT EXISTS (SELECT 1 FROM audit_archives a
                 WHERE a.node_id = OLD.node_id AND a.through_seq >= OLD.seq)
BEGIN SELECT RAISE(ABORT, 'audit tables are append-only'); END;

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit tables are append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit tables are append-only'); END;
CREATE TRIGGER audit_archives_no_update BEFORE UPDATE ON audit_archives
BEGIN SELECT RAISE(ABORT, 'audit tables are append-only'); END;
CREATE TRIGGER audit_archives_no_delete BEFORE DELETE ON audit_archives
BEGIN SELECT RAISE(ABORT, 'audit tables are append-only'); END;
