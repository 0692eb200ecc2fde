-- How a run built its table: a full build (and why), which keys an incremental run recomputed,
-- or that nothing upstream had changed.
ALTER TABLE model_runs ADD COLUMN refresh TEXT NOT NULL DEFAULT '';
