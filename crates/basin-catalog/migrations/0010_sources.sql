-- Sources: connectors that keep a table fed, run by the server's scheduler as their owner.
CREATE TABLE sources (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    hub TEXT NOT NULL,
    dataset TEXT NOT NULL,
    table_name TEXT NOT NULL,
    config TEXT NOT NULL,
    every_secs BIGINT NOT NULL,
    -- A cron expression ('0 2 * * *', UTC) that schedules the runs instead of every_secs.
    cron TEXT NOT NULL,
    max_attempts BIGINT NOT NULL,
    owner TEXT NOT NULL,
    paused BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    -- What the source has read so far (a PostgreSQL source's watermark), as JSON.
    state TEXT NOT NULL
);

-- Each file a files source has seen: loaded (once), or failed so far.
CREATE TABLE source_files (
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    size BIGINT NOT NULL,
    modified_ms BIGINT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    rows BIGINT NOT NULL,
    version BIGINT NOT NULL,
    error TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (source, path),
    FOREIGN KEY (source) REFERENCES sources (name) ON DELETE CASCADE
);

CREATE TABLE source_runs (
    source TEXT NOT NULL,
    hub TEXT NOT NULL,
    dataset TEXT NOT NULL,
    table_name TEXT NOT NULL,
    trigger TEXT NOT NULL,
    started_at TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    files BIGINT NOT NULL,
    failed_files BIGINT NOT NULL,
    rows BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    lag_ms BIGINT NOT NULL,
    error TEXT NOT NULL
);
CREATE INDEX source_runs_source ON source_runs (source, started_at);
