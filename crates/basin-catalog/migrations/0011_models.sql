-- Models: SQL that builds a table from other tables, declared in a project folder and applied.
CREATE TABLE models (
    -- The target, hub.dataset.table: one model per table.
    name TEXT PRIMARY KEY,
    -- The project folder's name (basin.toml): applying a project drops its models that left it.
    project TEXT NOT NULL,
    hub TEXT NOT NULL,
    dataset TEXT NOT NULL,
    table_name TEXT NOT NULL,
    -- What the project file says (materialization, SQL, checks, upstream tables), as JSON.
    spec TEXT NOT NULL,
    -- The principal the model runs as (who applied it).
    owner TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE model_runs (
    model TEXT NOT NULL,
    trigger TEXT NOT NULL,
    started_at TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    -- ok, warned (a warn check failed), failed (a check or the SQL), skipped
    status TEXT NOT NULL,
    rows_out BIGINT NOT NULL,
    -- The target's version the run produced, or -1.
    version BIGINT NOT NULL,
    -- Each check with its outcome and a sample of failing rows, as JSON.
    checks TEXT NOT NULL,
    error TEXT NOT NULL
);
CREATE INDEX model_runs_model ON model_runs (model, started_at);
