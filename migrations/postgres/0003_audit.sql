-- The audit trail (PCI DSS 10). One hash chain per writer node: each record
-- holds the hash of the one before it; sealed checkpoints pin the chain.
-- Rows are never updated. The only delete path is audit_purge(), which
-- removes records an archive file already holds, up to a sealed checkpoint
-- that stays behind so verification still holds.

CREATE TABLE audit_events (
    node_id      TEXT    NOT NULL,
    seq          BIGINT  NOT NULL CHECK (seq > 0),
    version      INTEGER NOT NULL,
    at_us        BIGINT  NOT NULL,
    event_type   TEXT    NOT NULL,
    actor_kind   TEXT    NOT NULL,
    actor_id     TEXT    NOT NULL,
    tenant_id    UUID,
    outcome      TEXT    NOT NULL,
    origin       TEXT,
    resource     TEXT,
    request_id   TEXT,
    reason       TEXT,
    prev_hash    BYTEA   NOT NULL CHECK (length(prev_hash) = 32),
    record_hash  BYTEA   NOT NULL CHECK (length(record_hash) = 32),
    PRIMARY KEY (node_id, seq)
);

CREATE INDEX audit_events_at ON audit_events (at_us, node_id, seq);
CREATE INDEX audit_events_actor ON audit_events (actor_id, at_us);
CREATE INDEX audit_events_resource ON audit_events (resource, at_us);
CREATE INDEX audit_events_type ON audit_events (event_type, at_us);

-- (node, seq, hash) sealed with the audit key (HMAC-SHA256 in the HSM).
CREATE TABLE audit_checkpoints (
    node_id      TEXT   NOT NULL,
    seq          BIGINT NOT NULL CHECK (seq > 0),
    record_hash  BYTEA  NOT NULL CHECK (length(record_hash) = 32),
    at_us        BIGINT NOT NULL,
    key_id       TEXT   NOT NULL,
    seal         BYTEA  NOT NULL CHECK (length(seal) = 32),
    PRIMARY KEY (node_id, seq)
);

-- Records of a node up to through_seq were written to an archive file
-- (name and SHA-256 kept here) and may be removed from audit_events.
CREATE TABLE audit_archives (
    node_id      TEXT   NOT NULL,
    through_seq  BIGINT NOT NULL,
    archived_us  BIGINT NOT NULL,
    file_name    TEXT   NOT NULL,
    file_sha256  BYTEA  NOT NULL CHECK (length(file_sha256) = 32),
    records      BIGINT NOT NULL,
    PRIMARY KEY (node_id, through_seq),
    FOREIGN KEY (node_id, through_seq) REFERENCES audit_checkpoints (node_id, seq)
);

CREATE FUNCTION audit_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_events'
       AND current_setting('voltvault.audit_purge', true) = 'on'
       AND EXISTS (SELECT 1 FROM audit_archives a
                   WHERE a.node_id = OLD.node_id AND a.through_seq >= OLD.seq) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit tables are append-only (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE FUNCTION audit_reject_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit tables are append-only (TRUNCATE on %)', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_truncate();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_truncate();
CREATE TRIGGER audit_archives_append_only BEFORE UPDATE OR DELETE ON audit_archives
    FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER audit_archives_no_truncate BEFORE TRUNCATE ON audit_archives
    FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_truncate();

-- The one delete path. It runs as the table owner (SECURITY DEFINER): the
-- service role has no DELETE privilege and may only call this. It removes
-- records of one node up to an archived, sealed checkpoint that is older
-- than the 90-day queryable window, and nothing else.
CREATE FUNCTION audit_purge(p_node TEXT, p_through BIGINT) RETURNS BIGINT
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    removed BIGINT;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM audit_archives
                   WHERE node_id = p_node AND through_seq = p_through) THEN
        RAISE EXCEPTION 'no archive holds these audit records'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM audit_checkpoints
                   WHERE node_id = p_node AND seq = p_through
                     AND at_us < (extract(epoch FROM now() - interval '90 days') * 1000000)::BIGINT) THEN
        RAISE EXCEPTION 'audit records are still inside the queryable window'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM set_config('voltvault.audit_purge', 'on', true);
    DELETE FROM audit_events WHERE node_id = p_node AND seq <= p_through;
    GET DIAGNOSTICS removed = ROW_COUNT;
    PERFORM set_config('voltvault.audit_purge', 'off', true);
    RETURN removed;
END
$$;

REVOKE ALL ON FUNCTION audit_purge(TEXT, BIGINT) FROM PUBLIC;
