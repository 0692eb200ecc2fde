-- Principals, roles, grants, policies, tokens and the audit log. Portable SQL.
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    password_hash TEXT,
    attributes TEXT NOT NULL,
    disabled BIGINT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE roles (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE role_members (
    role TEXT NOT NULL REFERENCES roles (name),
    member TEXT NOT NULL,
    PRIMARY KEY (role, member)
);

-- A privilege on an object ('hub main', 'dataset main.sales', 'table main.sales.orders',
-- 'tag classification=public|internal'), for the whole object ('') or one column.
CREATE TABLE grants (
    grantee TEXT NOT NULL,
    privilege TEXT NOT NULL,
    object TEXT NOT NULL,
    column_name TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    PRIMARY KEY (grantee, privilege, object, column_name)
);

CREATE TABLE row_filters (
    object TEXT NOT NULL,
    grantee TEXT NOT NULL,
    expression TEXT NOT NULL,
    PRIMARY KEY (object, grantee)
);

CREATE TABLE column_masks (
    object TEXT NOT NULL,
    column_name TEXT NOT NULL,
    grantee TEXT NOT NULL,
    mask TEXT NOT NULL,
    PRIMARY KEY (object, column_name, grantee)
);

CREATE TABLE tag_keys (
    name TEXT PRIMARY KEY,
    allowed_values TEXT NOT NULL
);

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    principal TEXT NOT NULL,
    source TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);

CREATE INDEX audit_log_at ON audit_log (at);

-- Bumped by every change to the tables above (except tokens and audit), so decisions can be cached.
CREATE TABLE access_version (
    id BIGINT PRIMARY KEY,
    version BIGINT NOT NULL
);

INSERT INTO access_version (id, version) VALUES (1, 0);

ALTER TABLE tables ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
