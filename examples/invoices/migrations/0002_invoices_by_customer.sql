CREATE INDEX invoices_by_customer ON invoices (tenant_id, customer, created_at);
