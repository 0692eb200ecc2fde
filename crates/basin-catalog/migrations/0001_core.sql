-- Hubs, datasets, tables and their columns. Portable SQL: runs on SQLite and PostgreSQL.
CREATE TABLE hubs (
    name TEXT PRIMARY KEY,
    storage_root TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE datasets (
    hub TEXT NOT NULL REFERENCES hubs (name),
    name TEXT NOT NULL,
    layer TEXT NOT NULL CHECK (layer IN ('source', 'prepared', 'semantic')),
    domain TEXT,
    owner TEXT,
    description TEXT NOT NULL,
    tags TEXT NOT NULL,
    update_frequency TEXT,
    support_contact TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (hub, name)
);

CREATE TABLE tables (
    hub TEXT NOT NULL,
    dataset TEXT NOT NULL,
    name TEXT NOT NULL,
    location TEXT NOT NULL,
    description TEXT NOT NULL,
    primary_key TEXT NOT NULL,
    partition_columns TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (hub, dataset, name),
    FOREIGN KEY (hub, dataset) REFERENCES datasets (hub, name)
);

CREATE TABLE table_columns (
    hub TEXT NOT NULL,
    dataset TEXT NOT NULL,
    table_name TEXT NOT NULL,
    position BIGINT NOT NULL,
    name TEXT NOT NULL,
    data_type TEXT NOT NULL,
    nullable BIGINT NOT NULL,
    description TEXT NOT NULL,
    tags TEXT NOT NULL,
    PRIMARY KEY (hub, dataset, table_name, name),
    FOREIGN KEY (hub, dataset, table_name) REFERENCES tables (hub, dataset, name)
);
