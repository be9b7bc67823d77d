package registry

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func testRegistry(t *testing.T) *Registry {
	t.Helper()
	r, err := Open(filepath.Join("testdata", "valid.yaml"), Options{})
	require.NoError(t, err)
	return r
}

func TestVerify(t *testing.T) {
	r := testRegistry(t)
	tests := []struct {
		name, user, secret string
		wantID             int64
		wantTenant         string
		ok                 bool
	}{
		{"bcrypt by id", "1", "probe-one-secret", 1, "acme", true},
		{"bcrypt by name", "probe-one", "probe-one-secret", 1, "acme", true},
		{"argon2id by id", "2", "probe-two-secret", 2, "default", true},
		{"argon2id by name", "probe-two", "probe-two-secret", 2, "default", true},
		{"wrong secret", "probe-one", "probe-two-secret", 0, "", false},
		{"argon2id wrong secret", "2", "probe-one-secret", 0, "", false},
		{"empty secret", "1", "", 0, "", false},
		{"unknown id", "3", "probe-one-secret", 0, "", false},
		{"unknown name", "probe-three", "probe-one-secret", 0, "", false},
		{"empty user", "", "probe-one-secret", 0, "", false},
		{"secret prefix", "1", "probe-one-secre", 0, "", false},
	}
	// Twice: the second round answers successes from the cache and must
	// agree with the first.
	for round := range 2 {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p, ok := r.Verify(tt.user, tt.secret)
				require.Equal(t, tt.ok, ok, "round %d", round)
				require.Equal(t, tt.wantID, p.ID)
				require.Equal(t, tt.wantTenant, p.Tenant)
			})
		}
	}
}

func TestVerifyBcryptVariants(t *testing.T) {
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		t.Run(prefix, func(t *testing.T) {
			h := prefix + strings.TrimPrefix(bcryptOne, "$2a$")
			r, err := New(&File{Probes: []Probe{{ID: 5, Name: "p", Tenant: "t", SecretHash: h}}}, Options{})
			require.NoError(t, err)
			_, ok := r.Verify("5", "probe-one-secret")
			require.True(t, ok)
			_, ok = r.Verify("5", "nope")
			require.False(t, ok)
		})
	}
}

// countingHash counts verifications and optionally blocks them.
type countingHash struct {
	inner   secretHash
	calls   atomic.Int64
	running atomic.Int64
	maxRun  atomic.Int64
	gate    chan struct{}
}

func (c *countingHash) verify(secret string) bool {
	c.calls.Add(1)
	n := c.running.Add(1)
	for {
		m := c.maxRun.Load()
		if n <= m || c.maxRun.CompareAndSwap(m, n) {
			break
		}
	}
	if c.gate != nil {
		<-c.gate
	}
	defer c.running.Add(-1)
	return c.inner.verify(secret)
}

func instrument(r *Registry, id int64, gate chan struct{}) *countingHash {
	e := r.snap.Load().byID[id]
	c := &countingHash{inner: e.hash, gate: gate}
	e.hash = c
	return c
}

func TestVerifyCachesSuccessOnly(t *testing.T) {
	r := testRegistry(t)
	c := instrument(r, 1, nil)

	for range 3 {
		_, ok := r.Verify("probe-one", "wrong")
		require.False(t, ok)
	}
	require.EqualValues(t, 3, c.calls.Load(), "failures must cost a hash every time")

	for range 3 {
		_, ok := r.Verify("probe-one", "probe-one-secret")
		require.True(t, ok)
	}
	_, ok := r.Verify("1", "probe-one-secret")
	require.True(t, ok)
	require.EqualValues(t, 4, c.calls.Load(), "one hash for the first success, the rest cached")

	// A wrong secret after a cached success still costs a hash and fails.
	_, ok = r.Verify("1", "probe-one-secreT")
	require.False(t, ok)
	require.EqualValues(t, 5, c.calls.Load())
}

func TestVerifyLimitsConcurrentHashes(t *testing.T) {
	f, err := Load(filepath.Join("testdata", "valid.yaml"))
	require.NoError(t, err)
	r, err := New(f, Options{MaxConcurrentHashes: 2})
	require.NoError(t, err)
	gate := make(chan struct{})
	c := instrument(r, 1, gate)

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { r.Verify("1", "wrong") })
	}
	for range 8 {
		gate <- struct{}{}
	}
	wg.Wait()
	require.EqualValues(t, 8, c.calls.Load())
	require.EqualValues(t, 2, c.maxRun.Load())
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.yaml")
	one := "probes:\n  - {id: 1, name: probe-one, tenant: acme, secret_hash: \"" + bcryptOne + "\"}\n"
	writeFile(t, path, one)
	r, err := Open(path, Options{})
	require.NoError(t, err)
	_, ok := r.Verify("1", "probe-one-secret")
	require.True(t, ok)

	// Same probe, new secret and tenant: the cached old secret must stop working.
	writeFile(t, path, "probes:\n  - {id: 1, name: probe-one, tenant: beta, secret_hash: \""+argon2idTwo+"\"}\n")
	require.NoError(t, r.Reload())
	_, ok = r.Verify("1", "probe-one-secret")
	require.False(t, ok)
	p, ok := r.Verify("probe-one", "probe-two-secret")
	require.True(t, ok)
	require.Equal(t, "beta", p.Tenant)

	// A broken file keeps the previous content.
	writeFile(t, path, "probes:\n  - {id: 1, nam: x}\n")
	err = r.Reload()
	require.ErrorContains(t, err, "registry.yaml:2:13: probes[0].nam: unknown field")
	_, ok = r.Verify("1", "probe-two-secret")
	require.True(t, ok)

	// Removed probes are gone, their cache entries too.
	writeFile(t, path, "probes: []\n")
	require.NoError(t, r.Reload())
	_, ok = r.Verify("1", "probe-two-secret")
	require.False(t, ok)
	_, cached := r.cache.Load(int64(1))
	require.False(t, cached)
	_, ok = r.Probe(1)
	require.False(t, ok)
	require.Empty(t, r.File().Probes)
}

func TestReloadWithoutFile(t *testing.T) {
	r, err := New(&File{}, Options{})
	require.NoError(t, err)
	require.Error(t, r.Reload())
}

func TestNewRejectsBadFile(t *testing.T) {
	_, err := New(&File{Probes: []Probe{{ID: 1, Name: "a", SecretHash: "plain"}}}, Options{})
	require.ErrorContains(t, err, "probe 1 secret_hash: unknown hash format")
	_, err = New(&File{Probes: []Probe{{ID: 1, Name: "a", SecretHash: bcryptOne}, {ID: 1, Name: "b", SecretHash: bcryptOne}}}, Options{})
	require.ErrorContains(t, err, "duplicate probe id 1")
}

func TestVerifyConcurrentWithReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.yaml")
	content := "probes:\n  - {id: 1, name: probe-one, secret_hash: \"" + bcryptOne + "\"}\n"
	writeFile(t, path, content)
	r, err := Open(path, Options{})
	require.NoError(t, err)
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range 4 {
		wg.Go(func() {
			for range 200 {
				if _, ok := r.Verify("probe-one", "probe-one-secret"); !ok {
					failures.Add(1)
				}
			}
		})
	}
	for range 20 {
		require.NoError(t, r.Reload())
	}
	wg.Wait()
	require.Zero(t, failures.Load())
}

func BenchmarkVerifyCached(b *testing.B) {
	r, err := Open(filepath.Join("testdata", "valid.yaml"), Options{})
	require.NoError(b, err)
	_, ok := r.Verify("probe-two", "probe-two-secret")
	require.True(b, ok)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := r.Verify("probe-two", "probe-two-secret"); !ok {
				b.Fatal("verify failed")
			}
		}
	})
}
