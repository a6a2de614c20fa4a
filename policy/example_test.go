package policy_test

import (
	"context"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func ExampleEngine_Authorize() {
	eng, err := policy.New(policy.Options{}) // the embedded default set
	if err != nil {
		panic(err)
	}
	acme, globex := tenant.MustParse("acme"), tenant.MustParse("globex")
	admin := policy.Principal{Kind: policy.KindTenantKey, ID: "k1", Tenant: acme, Role: "admin"}

	own, _ := eng.Authorize(context.Background(), policy.Request{Principal: admin, Action: "key.manage", Tenant: acme})
	other, _ := eng.Authorize(context.Background(), policy.Request{Principal: admin, Action: "key.manage", Tenant: globex})
	fmt.Println(own.Allow, own.Policies)
	fmt.Println(other.Allow, other.Policies)
	// Output:
	// true [tenant-admin]
	// false [tenant-isolation]
}
