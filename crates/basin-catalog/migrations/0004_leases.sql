-- Leases for background jobs that several nodes could run (maintenance, schedules): one holder
-- at a time per name, until `expires_at` (milliseconds since the epoch, on the catalog
-- database's clock). `token` (the fencing token) grows by one with every new holder and is
-- never reset: a release only expires the lease.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    token BIGINT NOT NULL
)
