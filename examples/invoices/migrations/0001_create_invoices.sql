-- Invoices belong to a tenant: tenant_id is the first column of the primary
-- key and of every index, and defaults to the tenant of the transaction.
-- Bulkhead applies this file once per shard for pooled tenants (and adds
-- row-level security policies on tenant_id), once per schema tenant and
-- once per database tenant.
CREATE TABLE invoices (
	tenant_id    text        NOT NULL DEFAULT current_setting('bulkhead.tenant'),
	id           uuid        NOT NULL DEFAULT gen_random_uuid(),
	customer     text        NOT NULL CHECK (length(customer) BETWEEN 1 AND 200),
	amount_cents bigint      NOT NULL CHECK (amount_cents >= 0),
	created_at   timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id)
);
