package registry

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
)

// Options tunes a Registry. The zero value is usable.
type Options struct {
	// MaxConcurrentHashes bounds simultaneous bcrypt/argon2id verifications
	// (cache misses), so wrong or new credentials cannot take every core
	// from the cached hot path. Default: half of GOMAXPROCS, at least 1.
	MaxConcurrentHashes int
}

// Registry is the current content of a registry file, reloadable, with a
// credential verifier whose successful results are cached.
type Registry struct {
	path string
	snap atomic.Pointer[snapshot]
	sem  chan struct{}

	// cacheKey keys the secret digests in the cache, so a memory dump does
	// not hand out plain SHA-256 digests of the secrets.
	cacheKey [32]byte
	// cache maps a probe id to its last verified secret. At most one
	// entry per probe of the file, so it is bounded by the registry's size.
	cache sync.Map // int64 → *cacheEntry
	// reloadMu serialises Reload.
	reloadMu sync.Mutex
}

type cacheEntry struct {
	secretHash string   // the registry hash the secret was verified against
	digest     [32]byte // keyed SHA-256 of the secret
}

type snapshot struct {
	file   *File
	byID   map[int64]*probeEntry
	byName map[string]*probeEntry
}

type probeEntry struct {
	Probe
	hash secretHash
}

// Open loads the registry file at path.
func Open(path string, opts Options) (*Registry, error) {
	f, err := Load(path)
	if err != nil {
		return nil, err
	}
	r, err := New(f, opts)
	if err != nil {
		return nil, fmt.Errorf("read registry %s: %w", path, err)
	}
	r.path = path
	return r, nil
}

// New returns a registry holding f; it cannot Reload.
func New(f *File, opts Options) (*Registry, error) {
	n := opts.MaxConcurrentHashes
	if n <= 0 {
		n = max(1, runtime.GOMAXPROCS(0)/2)
	}
	r := &Registry{sem: make(chan struct{}, n)}
	if _, err := rand.Read(r.cacheKey[:]); err != nil {
		return nil, fmt.Errorf("read cache key: %w", err)
	}
	s, err := newSnapshot(f)
	if err != nil {
		return nil, err
	}
	r.snap.Store(s)
	return r, nil
}

func newSnapshot(f *File) (*snapshot, error) {
	s := &snapshot{file: f, byID: map[int64]*probeEntry{}, byName: map[string]*probeEntry{}}
	for _, p := range f.Probes {
		h, err := parseHash(p.SecretHash)
		if err != nil {
			return nil, fmt.Errorf("probe %d secret_hash: %w", p.ID, err)
		}
		if _, dup := s.byID[p.ID]; dup {
			return nil, fmt.Errorf("duplicate probe id %d", p.ID)
		}
		if _, dup := s.byName[p.Name]; dup {
			return nil, fmt.Errorf("duplicate probe name %q", p.Name)
		}
		e := &probeEntry{Probe: p, hash: h}
		s.byID[p.ID] = e
		s.byName[p.Name] = e
	}
	return s, nil
}

// Reload re-reads the file given to Open. On error the previous content
// stays in force.
func (r *Registry) Reload() error {
	if r.path == "" {
		return errors.New("reload registry: not read from a file")
	}
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	f, err := Load(r.path)
	if err != nil {
		return err
	}
	s, err := newSnapshot(f)
	if err != nil {
		return fmt.Errorf("read registry %s: %w", r.path, err)
	}
	r.snap.Store(s)
	// Entries of removed probes would otherwise stay forever; entries of
	// changed hashes are ignored by Verify and replaced on success.
	r.cache.Range(func(k, _ any) bool {
		if _, ok := s.byID[k.(int64)]; !ok {
			r.cache.Delete(k)
		}
		return true
	})
	return nil
}

// File returns the current content. Callers must not modify it.
func (r *Registry) File() *File { return r.snap.Load().file }

// Probe returns the probe with id.
func (r *Registry) Probe(id int64) (Probe, bool) {
	if e, ok := r.snap.Load().byID[id]; ok {
		return e.Probe, true
	}
	return Probe{}, false
}

// Verify checks the secret of the probe named by user (its name or its
// decimal id). A secret verified before against the same hash is accepted
// from the cache at the cost of one SHA-256; anything else costs a full
// bcrypt/argon2id verification, at most MaxConcurrentHashes at a time
// (callers wait). Failures are never cached, so guessing stays as slow as
// the hash. Unknown users fail without hashing: probe ids and names are
// not secret (every message carries its probeId).
func (r *Registry) Verify(user, secret string) (Probe, bool) {
	e := r.snap.Load().lookup(user)
	if e == nil {
		return Probe{}, false
	}
	digest := r.digest(secret)
	if v, ok := r.cache.Load(e.ID); ok {
		c := v.(*cacheEntry)
		if c.secretHash == e.SecretHash && subtle.ConstantTimeCompare(c.digest[:], digest[:]) == 1 {
			return e.Probe, true
		}
	}
	r.sem <- struct{}{}
	ok := e.hash.verify(secret)
	<-r.sem
	if !ok {
		return Probe{}, false
	}
	r.cache.Store(e.ID, &cacheEntry{secretHash: e.SecretHash, digest: digest})
	return e.Probe, true
}

func (s *snapshot) lookup(user string) *probeEntry {
	if e, ok := s.byName[user]; ok {
		return e
	}
	// Names are never numbers (Parse rejects them), so this is unambiguous.
	id, err := strconv.ParseInt(user, 10, 64)
	if err != nil {
		return nil
	}
	return s.byID[id]
}

// digest is SHA-256 over the process's cache key and the secret.
func (r *Registry) digest(secret string) [32]byte {
	var stack [128]byte
	b := append(append(stack[:0], r.cacheKey[:]...), secret...)
	d := sha256.Sum256(b)
	clear(b) // do not leave the secret on the stack longer than needed
	return d
}
