-- Views live beside tables, in the same namespace and under the same grants: a view is a row
-- of `tables` with kind 'view', its SQL text as definition and no location.
ALTER TABLE tables ADD COLUMN kind TEXT NOT NULL DEFAULT 'table';
ALTER TABLE tables ADD COLUMN definition TEXT NOT NULL DEFAULT ''
