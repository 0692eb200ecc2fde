-- The grants a project declares, as applied to a hub (one privilege, column and grantee each,
-- as a GRANT statement): a grant that leaves the project file is revoked by the next apply.
CREATE TABLE project_grants (
    project TEXT NOT NULL,
    hub TEXT NOT NULL,
    statement TEXT NOT NULL,
    PRIMARY KEY (project, hub, statement)
);
