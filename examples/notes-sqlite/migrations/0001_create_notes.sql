-- The team's own table, in each tenant's own SQLite file (database mode).
-- No tenant_id column is needed: the file is the tenant.
CREATE TABLE notes (
	id         INTEGER PRIMARY KEY,
	title      TEXT    NOT NULL,
	body       TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL
) STRICT;
