-- The team's own table, in each tenant's own SQLite file (database mode):
-- the file is the tenant, so no tenant_id column is needed. Ids are random,
-- so one tenant's id says nothing about another tenant's tasks.
CREATE TABLE tasks (
	id         TEXT    NOT NULL PRIMARY KEY,
	title      TEXT    NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
	done       INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)),
	created_at INTEGER NOT NULL
) STRICT;
