package identity

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Background refresh bounds of every JWKS (Cache-Control within them is
// honoured by jwk.Cache).
const (
	jwksMinInterval = 5 * time.Minute
	jwksMaxInterval = time.Hour
	fetchTimeout    = 10 * time.Second // bounds a JWKS fetch on the request path
)

// keySource hands out issuers' public keys from a jwk.Cache. A URL is
// registered (fetched) on first use; a kid the cached set does not have
// triggers a refetch, at most once per minRefresh per URL, so tokens with
// made-up kids cannot make us hammer an identity provider.
type keySource struct {
	cache      *jwk.Cache
	client     *http.Client
	now        func() time.Time
	minRefresh time.Duration

	mu   sync.Mutex // guards urls
	urls map[string]*jwksState
}

type jwksState struct {
	res atomic.Pointer[httprc.ResourceBase[jwk.Set]] // set once registered; refreshed in place

	mu        sync.Mutex // guards lastFetch; held while fetching
	lastFetch time.Time  // last registration attempt or forced refresh
}

func newKeySource(ctx context.Context, client *http.Client, now func() time.Time, minRefresh time.Duration) (*keySource, error) {
	if minRefresh <= 0 {
		minRefresh = 30 * time.Second
	}
	cache, err := jwk.NewCache(ctx, httprc.NewClient())
	if err != nil {
		return nil, fmt.Errorf("start jwks cache: %w", err)
	}
	return &keySource{cache: cache, client: client, now: now, minRefresh: minRefresh, urls: map[string]*jwksState{}}, nil
}

func (ks *keySource) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return ks.cache.Shutdown(ctx)
}

func (ks *keySource) state(url string) *jwksState {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	s, ok := ks.urls[url]
	if !ok {
		s = &jwksState{}
		ks.urls[url] = s
	}
	return s
}

// key returns the key of the JWKS at url that kid names (or, without kid,
// the only key of the set usable with alg), checked to be a signing key of
// alg's type.
func (ks *keySource) key(ctx context.Context, url, kid string, alg jwa.SignatureAlgorithm) (jwk.Key, error) {
	s := ks.state(url)
	set, err := ks.set(ctx, url, s, false)
	if err != nil {
		return nil, err
	}
	k, found := pick(set, kid, alg)
	if !found {
		// Maybe the issuer rotated its keys: refetch, rate-limited.
		if set, err = ks.set(ctx, url, s, true); err != nil {
			return nil, err
		}
		if k, found = pick(set, kid, alg); !found {
			return nil, invalid("no %s signing key with kid %q at the issuer's JWKS", alg, kid)
		}
	}
	return k, nil
}

// set returns the cached set for url, registering it on first use; with
// refresh it refetches first unless that was done less than minRefresh ago.
func (ks *keySource) set(ctx context.Context, url string, s *jwksState, refresh bool) (jwk.Set, error) {
	if r := s.res.Load(); r != nil && !refresh {
		if set := r.Resource(); set != nil {
			return set, nil // the warm path: no lock, no channel
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := ks.now()
	recent := !s.lastFetch.IsZero() && now.Sub(s.lastFetch) < ks.minRefresh
	if s.res.Load() == nil {
		if recent {
			return nil, invalid("the issuer's JWKS could not be fetched; retrying later")
		}
		s.lastFetch = now
		if err := ks.register(ctx, url); err != nil {
			return nil, invalid("fetch the issuer's JWKS: %v", err)
		}
		r, err := ks.cache.LookupResource(ctx, url)
		if err != nil {
			return nil, invalid("the issuer's JWKS is unavailable: %v", err)
		}
		s.res.Store(r)
	} else if refresh && !recent {
		s.lastFetch = now
		rctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		if _, err := ks.cache.Refresh(rctx, url); err != nil {
			return nil, invalid("refetch the issuer's JWKS: %v", err)
		}
	}
	set := s.res.Load().Resource()
	if set == nil {
		return nil, invalid("the issuer's JWKS is unavailable")
	}
	return set, nil
}

// register fetches url once directly, so an unreachable or malformed JWKS
// fails fast (jwk.Cache would wait for it until ctx ends), then hands it to
// the cache, which fetches it again and keeps it fresh.
func (ks *keySource) register(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	var fetchOpts []jwk.FetchOption
	opts := []jwk.RegisterOption{jwk.WithMinInterval(jwksMinInterval), jwk.WithMaxInterval(jwksMaxInterval)}
	if ks.client != nil {
		fetchOpts = append(fetchOpts, jwk.WithHTTPClient(ks.client))
		opts = append(opts, jwk.WithHTTPClient(ks.client))
	}
	if _, err := jwk.Fetch(ctx, url, fetchOpts...); err != nil {
		return err
	}
	if err := ks.cache.Register(ctx, url, opts...); err != nil {
		_ = ks.cache.Unregister(context.WithoutCancel(ctx), url)
		return err
	}
	return nil
}

// pick finds the key for kid (or the single usable key when kid is empty)
// and checks that it can verify alg: the right key type, use "sig" if set,
// and alg itself if the key names one. A symmetric key is never usable.
func pick(set jwk.Set, kid string, alg jwa.SignatureAlgorithm) (jwk.Key, bool) {
	if kid != "" {
		k, ok := set.LookupKeyID(kid)
		if !ok || !usable(k, alg) {
			return nil, false
		}
		return k, true
	}
	var only jwk.Key
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		if usable(k, alg) {
			if only != nil {
				return nil, false // ambiguous: tokens must name their key
			}
			only = k
		}
	}
	return only, only != nil
}

func usable(k jwk.Key, alg jwa.SignatureAlgorithm) bool {
	var want jwa.KeyType
	switch alg {
	case jwa.RS256(), jwa.RS384(), jwa.RS512(), jwa.PS256():
		want = jwa.RSA()
	case jwa.ES256(), jwa.ES384():
		want = jwa.EC()
	case jwa.EdDSA():
		want = jwa.OKP()
	default:
		return false
	}
	if k.KeyType() != want {
		return false
	}
	if use, ok := k.KeyUsage(); ok && use != "" && use != "sig" {
		return false
	}
	if ka, ok := k.Algorithm(); ok && ka.String() != "" && ka.String() != alg.String() {
		return false
	}
	return true
}
