-- Access requests: a principal asks for a privilege on a hub, dataset or table, with a reason;
-- those who may manage the object approve (which grants it) or deny, with a comment.
CREATE TABLE access_requests (
    id TEXT PRIMARY KEY,
    requester TEXT NOT NULL,
    -- The securable as text: 'hub main', 'dataset main.sales', 'table main.sales.orders'.
    object TEXT NOT NULL,
    privilege TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'cancelled')),
    created_at TEXT NOT NULL,
    decided_by TEXT,
    decided_at TEXT,
    comment TEXT NOT NULL
);

-- One pending request per requester and object.
CREATE UNIQUE INDEX access_requests_pending ON access_requests (requester, object) WHERE status = 'pending';

CREATE INDEX access_requests_object ON access_requests (object, status);

-- Bumped by every change to the names, descriptions, tags, domains and owners of hubs,
-- datasets, tables and columns, so that what is built from them (the search index) can be
-- cached.
CREATE TABLE catalog_version (
    id BIGINT PRIMARY KEY,
    version BIGINT NOT NULL
);

INSERT INTO catalog_version (id, version) VALUES (1, 0)
