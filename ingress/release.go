package ingress

import "context"

// ReleaseAdmission gives back the admission slot of the request ctx
// belongs to before the request ends: a long-lived response (an event
// stream) calls it once its stream has begun, so that it does not hold a
// slot of the in-flight cap while it waits, bounded by its own limits
// instead. Call it from the handler's goroutine. It does nothing for a
// context the gate did not make, or whose slot is already released.
func ReleaseAdmission(ctx context.Context) {
	if p, ok := ctx.Value(principalKey{}).(*Pass); ok && p.release != nil {
		p.release()
		p.release = nil
	}
}
