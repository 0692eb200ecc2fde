-- A principal's query history is read from the audit log, newest first: an index for it.
CREATE INDEX audit_log_principal_action ON audit_log (principal, action, at);
