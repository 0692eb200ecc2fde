-- Per-table settings of streamed records (a table without a row has the defaults).
CREATE TABLE table_streams (
    hub TEXT NOT NULL,
    dataset TEXT NOT NULL,
    table_name TEXT NOT NULL,
    max_age_ms BIGINT NOT NULL,
    max_bytes BIGINT NOT NULL,
    unknown_fields TEXT NOT NULL,
    -- A timestamp field of the records that fills the table's year/month/day/hour columns.
    partition_time_field TEXT NOT NULL,
    PRIMARY KEY (hub, dataset, table_name),
    FOREIGN KEY (hub, dataset, table_name) REFERENCES tables (hub, dataset, name) ON DELETE CASCADE
);
