-- History and exports read a tenant's sessions by start time.
CREATE INDEX payment_sessions_history ON payment_sessions (tenant_id, created_at, id);
