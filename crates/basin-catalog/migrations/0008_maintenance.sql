-- Per-table maintenance policy (a table without a row has the defaults), and the record of
-- every compaction and vacuum, for system.maintenance_runs.
CREATE TABLE table_maintenance (
    hub TEXT NOT NULL,
    dataset TEXT NOT NULL,
    table_name TEXT NOT NULL,
    auto BIGINT NOT NULL,
    min_files BIGINT NOT NULL,
    target_file_bytes BIGINT NOT NULL,
    retention_hours BIGINT NOT NULL,
    zorder TEXT NOT NULL,
    PRIMARY KEY (hub, dataset, table_name),
    FOREIGN KEY (hub, dataset, table_name) REFERENCES tables (hub, dataset, name) ON DELETE CASCADE
);

CREATE TABLE maintenance_runs (
    hub TEXT NOT NULL,
    dataset TEXT NOT NULL,
    table_name TEXT NOT NULL,
    operation TEXT NOT NULL,
    trigger TEXT NOT NULL,
    started_at TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    version BIGINT NOT NULL,
    files_before BIGINT NOT NULL,
    files_after BIGINT NOT NULL,
    bytes_rewritten BIGINT NOT NULL,
    files_deleted BIGINT NOT NULL,
    error TEXT NOT NULL
);
CREATE INDEX maintenance_runs_table ON maintenance_runs (hub, dataset, table_name, started_at);
