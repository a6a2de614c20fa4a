-- The list shows open tasks first, oldest first.
CREATE INDEX tasks_by_state ON tasks (done, created_at, id);
