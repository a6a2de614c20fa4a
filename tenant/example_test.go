package tenant_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Parse is the only way to make an ID, so every ID in a program has passed
// the tenancy contract's rules.
func ExampleParse() {
	for _, s := range []string{"acme", "globex-2", "Acme", "ab-", "admin", "x"} {
		id, err := tenant.Parse(s)
		if err != nil {
			fmt.Println(errors.Is(err, tenant.ErrInvalid), err)
			continue
		}
		fmt.Println("valid:", id)
	}
	// Output:
	// valid: acme
	// valid: globex-2
	// true invalid tenant id "Acme": must start with a lowercase letter a-z
	// true invalid tenant id "ab-": must not end with '-'
	// true invalid tenant id "admin": is a reserved word
	// true invalid tenant id "x": must be 2 to 40 characters
}

// The tenant travels in the context, from the credential that decided it
// to every data access. A context without one fails closed.
func ExampleWithID() {
	ctx := tenant.WithID(context.Background(), tenant.MustParse("acme"))

	id, err := tenant.FromContext(ctx)
	fmt.Println(id, err)

	_, err = tenant.FromContext(context.Background())
	fmt.Println(err, errors.Is(err, tenant.ErrMissing))
	// Output:
	// acme <nil>
	// no tenant in context true
}

// Storage names are derived from the ID by one function, with a prefix no
// tenant can avoid.
func ExampleID_StorageName() {
	fmt.Println(tenant.MustParse("globex-2").StorageName())
	// Output: t_globex_2
}
