package sched_test

import (
	"context"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/sched"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Two tenants with work left after every batch: the one of weight 2 gets
// two batches for each of the other's, and a tenant made ready twice is
// queued once.
func ExampleScheduler() {
	gold, std := tenant.MustParse("gold"), tenant.MustParse("std")
	s := sched.New(sched.Options{Weight: func(id tenant.ID) int {
		if id == gold {
			return 2
		}
		return 1
	}})
	s.Ready(std)
	s.Ready(gold)
	s.Ready(gold)
	fmt.Println("queued:", s.Queued())
	ctx := context.Background()
	for range 6 {
		id, _ := s.Next(ctx)
		fmt.Print(id, " ")
		s.Done(id, sched.Outcome{Cost: 1, More: true})
	}
	fmt.Println()
	// Output:
	// queued: 2
	// gold std gold gold std gold
}
