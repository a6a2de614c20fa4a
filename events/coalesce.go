package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"
)

// readTimeout bounds a shared read, which runs on no one stream's context.
const readTimeout = 30 * time.Second

// readGroup lets the streams of one tenant that stand at the same position
// with the same filter share one read of the outbox: the ten consumers of
// a tenant that follow its head read it once per commit, not ten times.
// The key holds the tenant, so no read is ever shared across tenants, and
// the generation of the tenant's wake-ups the stream has seen, so a
// stream only joins a read begun after the commit it was woken for.
type readGroup struct {
	mu    sync.Mutex // guards calls
	calls map[string]*readCall
}

type readCall struct {
	done chan struct{}
	b    batch
	err  error
}

func (s *stream) readKey(after int64, gen uint64) string {
	var k strings.Builder
	k.WriteString(s.id.String())
	k.WriteByte(0)
	k.WriteString(strconv.FormatInt(after, 10))
	k.WriteByte(0)
	k.WriteString(strconv.FormatUint(gen, 10))
	k.WriteByte(0)
	k.WriteString(strconv.FormatInt(s.inc.UnixMicro(), 10))
	k.WriteByte(0)
	k.WriteString(strings.Join(s.collections, ","))
	return k.String()
}

// sharedRead reads the page after after, joining a read of the same key in
// flight if there is one.
func (s *stream) sharedRead(ctx context.Context, after int64, gen uint64) (batch, error) {
	g := &s.h.reads
	key := s.readKey(after, gen)
	g.mu.Lock()
	if c, ok := g.calls[key]; ok {
		g.mu.Unlock()
		select {
		case <-c.done:
			return c.b, c.err
		case <-ctx.Done():
			return batch{}, ctx.Err()
		}
	}
	if g.calls == nil {
		g.calls = map[string]*readCall{}
	}
	c := &readCall{done: make(chan struct{})}
	g.calls[key] = c
	g.mu.Unlock()

	// The read goes on if this stream ends meanwhile: others may wait on it.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
	c.b, c.err = s.read(rctx, after, startAfter)
	cancel()
	g.mu.Lock()
	delete(g.calls, key)
	g.mu.Unlock()
	close(c.done)
	return c.b, c.err
}

// checkCache shares the result of a stream's periodic check (its tenant's
// incarnation and Handler.Check) among the streams of the same tenant
// opened with the same Authorization header, for one CheckInterval: ten
// streams of one key cost one credential check per interval, not ten.
type checkCache struct {
	mu sync.Mutex // guards m
	m  map[string]checkResult
}

type checkResult struct {
	at  time.Time
	err error
}

// maxCheckEntries bounds the cache; past it the cache is cleared.
const maxCheckEntries = 100_000

func (s *stream) checkKey() string {
	sum := sha256.Sum256([]byte(s.r.Header.Get("Authorization")))
	return s.id.String() + "\x00" + hex.EncodeToString(sum[:])
}

// sharedCheck returns the latest check result of the stream's tenant and
// credential if it is younger than every, else checks again.
func (s *stream) sharedCheck(every time.Duration) error {
	c := &s.h.checks
	key := s.checkKey()
	now := time.Now()
	c.mu.Lock()
	if r, ok := c.m[key]; ok && now.Sub(r.at) < every {
		c.mu.Unlock()
		return r.err
	}
	c.mu.Unlock()
	err := s.check()
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCheckEntries {
		c.m = map[string]checkResult{}
	}
	c.m[key] = checkResult{at: now, err: err}
	c.mu.Unlock()
	return err
}
