package storetest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// mark is what every value tenant name writes in the attack tests carries.
func mark(name string) string { return "secret-of-" + name + "/" }

// siege is a set of tenants that each wrote marked notes (where they have
// own SQL) and records, and attack one another.
type siege struct {
	o     *OwnSQL
	e     *Env
	ctx   map[string]context.Context
	notes map[string][]Note            // what each tenant wrote, by id
	recs  map[string]map[string]string // what each tenant put: id → data
}

func (o *OwnSQL) newSiege(t *testing.T, e *Env, names []string) *siege {
	s := &siege{o: o, e: e, ctx: map[string]context.Context{}, notes: map[string][]Note{}, recs: map[string]map[string]string{}}
	for _, name := range names {
		s.o.tenant(t, e, name)
		s.write(t, name)
	}
	return s
}

// recreate offboards tenant name and provisions it again where it was.
func (s *siege) recreate(t *testing.T, name string) {
	t.Helper()
	p := s.e.PlacementOf(name)
	s.e.Offboard(t, name)
	s.e.tenantAt(t, tenant.MustParse(name), p)
	s.o.migrate(t, s.e, name)
	s.write(t, name)
}

// write writes tenant name's marked notes and records. Every tenant uses
// the same ids.
func (s *siege) write(t *testing.T, name string) {
	t.Helper()
	ctx := tenant.WithID(context.Background(), tenant.MustParse(name))
	s.ctx[name] = ctx
	s.notes[name] = nil
	if s.o.has(s.e.PlacementOf(name).Mode) {
		for i := range 3 {
			n := Note{fmt.Sprintf("n%d", i), fmt.Sprintf("%snote-%d", mark(name), i)}
			s.o.insert(t, s.e, ctx, n.ID, n.Body)
			s.notes[name] = append(s.notes[name], n)
		}
	}
	s.recs[name] = map[string]string{}
	for i := range 2 {
		id := fmt.Sprintf("r%d", i)
		s.recs[name][id] = string(s.e.mustPut(t, ctx, "notes", id, fmt.Sprintf(`{"owner":"%s","i":%d}`, mark(name), i)).Data)
	}
}

// intact reports how tenant name's data differs from what it wrote, read
// through its own transactions ("" if it does not).
func (s *siege) intact(t *testing.T, name string) string {
	t.Helper()
	ctx := s.ctx[name]
	var diffs []string
	if s.o.has(s.e.PlacementOf(name).Mode) {
		if got := s.o.notes(t, s.e, ctx); !slices.Equal(got, s.notes[name]) {
			diffs = append(diffs, fmt.Sprintf("notes %v, wrote %v", got, s.notes[name]))
		}
	}
	got := map[string]string{}
	for _, r := range s.e.listAll(t, ctx, "notes", store.MaxLimit, nil) {
		got[r.ID] = string(r.Data)
	}
	if !maps.Equal(got, s.recs[name]) {
		diffs = append(diffs, fmt.Sprintf("records %v, put %v", got, s.recs[name]))
	}
	return strings.Join(diffs, "; ")
}

// attack runs a in attacker's transaction against victim and checks that
// nothing of any other tenant was read and that the victim is intact. A
// victim that was changed is re-created, so later attacks start clean. It
// returns how the attack ended, for the log.
func (s *siege) attack(t *testing.T, a Attack, attacker, victim string) string {
	t.Helper()
	actx := s.ctx[attacker]
	vp := s.e.PlacementOf(victim)
	v := Victim{Tenant: tenant.MustParse(victim), Placement: vp, Backend: s.e.Shards[vp.Shard]}
	var seen []string
	var stopped, after error
	err := sqlRun(s.e, actx, a.ReadOnly, func(_ *store.Tx, h any) error {
		seen, stopped = a.Run(actx, h, v)
		if stopped != nil {
			return stopped
		}
		ns, err := s.o.Notes(actx, h)
		for _, n := range ns {
			seen = append(seen, n.ID, n.Body)
		}
		after = err
		return nil // commit what the attack wrote, even if the read failed
	})
	ap := s.e.PlacementOf(attacker)
	who := fmt.Sprintf("%s (%s on %s) against %s (%s on %s)", attacker, ap.Mode, ap.Shard, victim, vp.Mode, vp.Shard)
	var leaked []string
	for _, x := range seen {
		for name := range s.ctx {
			if name != attacker && strings.Contains(x, mark(name)) {
				leaked = append(leaked, x)
			}
		}
	}
	if len(leaked) > 0 {
		t.Errorf("%s read another tenant's data: %q", who, leaked)
	}
	if d := s.intact(t, victim); d != "" {
		t.Errorf("%s changed the victim: %s", who, d)
		s.recreate(t, victim)
	}
	if d := s.intact(t, attacker); d != "" && a.ReadOnly {
		t.Errorf("%s wrote in a read-only transaction: %s", who, d)
		s.recreate(t, attacker)
	} else if d != "" { // its own rows are its to change
		t.Logf("%s changed its own data (%s); re-creating it", who, d)
		s.recreate(t, attacker)
	}
	switch {
	case stopped != nil:
		return "stopped: " + firstLine(stopped)
	case err != nil:
		return "ran; commit failed: " + firstLine(err)
	case after != nil:
		return "ran and committed; notes unreadable afterwards: " + firstLine(after)
	}
	return "ran and committed"
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// testAttacks: tenant "attacker" runs every attack against tenant "victim",
// both in the Env's mode.
func (o *OwnSQL) testAttacks(t *testing.T, e *Env) {
	if len(o.Attacks) == 0 {
		t.Skip("no attacks for this engine")
	}
	s := o.newSiege(t, e, []string{"attacker", "victim"})
	for _, a := range o.Attacks {
		t.Run(a.Name, func(t *testing.T) { t.Log(s.attack(t, a, "attacker", "victim")) })
	}
}

// testAttacksMixed: tenants on every placement of a mixed Env, some
// sharing one; every tenant with own SQL runs every attack against every
// other tenant.
func (o *OwnSQL) testAttacksMixed(t *testing.T, e *Env) {
	if len(o.Attacks) == 0 {
		t.Skip("no attacks for this engine")
	}
	// More tenants than placements, so that some share a mode and shard.
	names := tenantNames(len(e.places) + (len(e.places)+1)/2)
	s := o.newSiege(t, e, names)
	for _, a := range o.Attacks {
		t.Run(a.Name, func(t *testing.T) {
			ends := map[string]int{}
			for _, attacker := range names {
				if !o.has(e.PlacementOf(attacker).Mode) {
					continue
				}
				for _, victim := range names {
					if victim != attacker {
						end := s.attack(t, a, attacker, victim)
						end, _, _ = strings.Cut(end, ":")
						ends[end]++
					}
				}
			}
			t.Logf("attacker and victim pairs: %v", ends)
		})
	}
}
