-- Notes belong to a tenant and live in the shard's pooled schema, beside
-- every other tenant's. tenant_id is the first column of the primary key
-- and defaults to the transaction's tenant, so the code never writes it.
-- Because the table has tenant_id, Bulkhead's applier enables and forces
-- row-level security on it, adds the tenant policies and grants the serving
-- role what it needs: the database itself keeps each transaction to its
-- tenant's rows.
CREATE TABLE notes (
	tenant_id  text        NOT NULL DEFAULT current_setting('bulkhead.tenant'),
	id         uuid        NOT NULL DEFAULT gen_random_uuid(),
	text       text        NOT NULL CHECK (length(text) BETWEEN 1 AND 10000),
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id)
);
CREATE INDEX notes_by_time ON notes (tenant_id, created_at, id);
