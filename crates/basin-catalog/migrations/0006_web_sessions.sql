-- Portal sign-ins: a browser's session, stored by the hash of the id its cookie holds (a copy
-- of this table lets nobody sign in), with the roles an identity provider granted at sign-in.
CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    roles TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
