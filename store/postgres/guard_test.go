package postgres

import (
	"errors"
	"testing"
)

func TestRefusedStatement(t *testing.T) {
	for _, c := range []struct {
		sql     string
		refused bool
	}{
		{"SELECT 1", false},
		{"  insert into t values (1)", false},
		{"SAVEPOINT s", false},
		{"RELEASE SAVEPOINT s", false},
		{"ROLLBACK TO SAVEPOINT s", false},
		{"rollback work to s", false},
		{"ROLLBACK TRANSACTION TO SAVEPOINT s", false},
		{"EXPLAIN EXECUTE x", false},
		{`"prepare"`, false},
		{"PREPARE x AS SELECT 1", true},
		{"prepare x as select 1", true},
		{"DEALLOCATE ALL", true},
		{"deallocate prepare x", true},
		{"DISCARD ALL", true},
		{"-- a comment\nDEALLOCATE x", true},
		{"/* a /* nested */ comment */ PREPARE x AS SELECT 1", true},
		{"\t\nCOMMIT", true},
		{"END", true},
		{"ABORT", true},
		{"BEGIN", true},
		{"START TRANSACTION", true},
		{"ROLLBACK", true},
		{"ROLLBACK WORK", true},
		{"COMMIT PREPARED 'x'", true},
		{"PREPARE TRANSACTION 'x'", true},
		{";DEALLOCATE ALL", true},
		{" ; ;\n-- x\nDISCARD ALL", true},
	} {
		err := refusedStatement(c.sql)
		if got := errors.Is(err, ErrStatementRefused); got != c.refused {
			t.Errorf("refusedStatement(%q) = %v, want refused %v", c.sql, err, c.refused)
		}
	}
}
