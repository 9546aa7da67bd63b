package inbox

import (
	"context"
	"errors"
	"time"
)

// CollLeases is the global collection of leases: name -> Lease.
const CollLeases = "leases"

// Lease says which process may run a piece of background work (the outbox,
// retention, erasure) until when. With several server processes on one
// store, each such job must run in one of them at a time; the lease is
// written through the store, so it works on any Store, and a holder that
// stops renewing (it crashed, or lost the store) loses it when Until
// passes. Clocks of the processes must agree to well within the TTL.
type Lease struct {
	Name   string    `json:"name"`
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// Held reports whether holder has the lease at now.
func (l Lease) Held(holder string, now time.Time) bool {
	return l.Holder == holder && now.Before(l.Until)
}

func checkLease(name, holder string, ttl time.Duration) error {
	switch {
	case name == "":
		return invalid("a lease needs a name")
	case holder == "":
		return invalid("a lease needs a holder")
	case ttl <= 0:
		return invalid("a lease needs a positive TTL, got %s", ttl)
	}
	return nil
}

// AcquireLease takes the lease for holder until now+ttl when it is free,
// expired, or already holder's (which renews it). Otherwise it changes
// nothing and returns the current lease, which Held reports is not
// holder's. now is the caller's clock, injected so tests need no sleeps.
func AcquireLease(ctx context.Context, st Store, name, holder string, now time.Time, ttl time.Duration) (Lease, error) {
	if err := checkLease(name, holder, ttl); err != nil {
		return Lease{}, err
	}
	var got Lease
	err := st.Update(ctx, func(tx Tx) error {
		var cur Lease
		err := tx.Get(global(CollLeases), name, &cur)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err == nil && cur.Holder != holder && now.Before(cur.Until) {
			got = cur
			return nil
		}
		got = Lease{Name: name, Holder: holder, Until: now.Add(ttl)}
		return tx.Put(global(CollLeases), name, got)
	})
	if err != nil {
		return Lease{}, err
	}
	return got, nil
}

// RenewLease extends holder's lease to now+ttl. It fails with conflict
// when someone else holds the lease (holder lost it: it must stop the
// work at once); a lease of holder's that expired but that nobody took
// meanwhile is renewed.
func RenewLease(ctx context.Context, st Store, name, holder string, now time.Time, ttl time.Duration) (Lease, error) {
	l, err := AcquireLease(ctx, st, name, holder, now, ttl)
	if err != nil {
		return Lease{}, err
	}
	if l.Holder != holder {
		return l, Errorf(CodeConflict, "lease %q is held by %s until %s", name, l.Holder, l.Until.Format(time.RFC3339))
	}
	return l, nil
}

// ReleaseLease gives the lease up if holder has it, so another process
// may take the work over at once rather than after the TTL.
func ReleaseLease(ctx context.Context, st Store, name, holder string) error {
	if err := checkLease(name, holder, time.Second); err != nil {
		return err
	}
	return st.Update(ctx, func(tx Tx) error {
		var cur Lease
		if err := tx.Get(global(CollLeases), name, &cur); err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		if cur.Holder != holder {
			return nil
		}
		return tx.Delete(global(CollLeases), name)
	})
}

// LeaseOf returns the lease's current record (zero when none).
func LeaseOf(ctx context.Context, st Store, name string) (Lease, error) {
	var l Lease
	err := st.View(ctx, func(tx Tx) error {
		err := tx.Get(global(CollLeases), name, &l)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	})
	return l, err
}
