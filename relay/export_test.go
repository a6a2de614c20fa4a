package relay

import (
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// SetTestHooks sets the crash test's hooks (nil: none). Only the child
// process of the crash test sets them, before it starts a relay.
func SetTestHooks(beforePublish func(tenant.ID, []store.Event), beforeSave func(tenant.ID, int64)) {
	testHookBeforePublish, testHookBeforeSave = beforePublish, beforeSave
}
