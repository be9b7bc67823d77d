package registry

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Hash algorithms for HashSecret.
const (
	AlgoBcrypt   = "bcrypt"
	AlgoArgon2id = "argon2id"
)

// Parameters of new hashes. argon2id follows OWASP's recommendation
// (19 MiB, 2 passes, 1 lane); bcrypt uses the library default cost.
const (
	argon2Memory  = 19 * 1024
	argon2Time    = 2
	argon2Threads = 1
	argon2SaltLen = 16
	argon2KeyLen  = 32
	bcryptCost    = bcrypt.DefaultCost
)

// Bounds on hash parameters read from a registry, so a typo cannot make
// every verification allocate gigabytes or run for minutes.
const (
	maxArgon2Memory = 4 * 1024 * 1024 // KiB = 4 GiB
	maxArgon2Time   = 64
	maxBcryptCost   = 16
)

// secretHash is a parsed credential hash.
type secretHash interface {
	verify(secret string) bool
}

type bcryptHash struct{ encoded []byte }

func (h bcryptHash) verify(secret string) bool {
	// bcrypt compares in constant time itself.
	return bcrypt.CompareHashAndPassword(h.encoded, []byte(secret)) == nil
}

type argon2idHash struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

func (h argon2idHash) verify(secret string) bool {
	got := argon2.IDKey([]byte(secret), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(got, h.key) == 1
}

// parseHash checks an encoded hash and prepares it for verification.
func parseHash(s string) (secretHash, error) {
	switch {
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		cost, err := bcrypt.Cost([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("bcrypt hash: %w", err)
		}
		if cost > maxBcryptCost {
			return nil, fmt.Errorf("bcrypt cost %d above %d", cost, maxBcryptCost)
		}
		return bcryptHash{encoded: []byte(s)}, nil
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	case s == "":
		return nil, errors.New("missing")
	default:
		return nil, errors.New("unknown hash format: want bcrypt ($2a$, $2b$, $2y$) or argon2id ($argon2id$)")
	}
}

// parseArgon2id reads the PHC string format
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt b64>$<hash b64>.
func parseArgon2id(s string) (secretHash, error) {
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(parts) != 6 {
		return nil, errors.New("argon2id hash: want $argon2id$v=19$m=..,t=..,p=..$salt$hash")
	}
	if parts[2] != "v=19" {
		return nil, fmt.Errorf("argon2id hash: unsupported version %q, want v=19", parts[2])
	}
	var h argon2idHash
	seen := map[string]bool{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || seen[k] {
			return nil, fmt.Errorf("argon2id hash: bad parameter %q", kv)
		}
		seen[k] = true
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("argon2id hash: parameter %s: %w", k, err)
		}
		switch k {
		case "m":
			h.memory = uint32(n)
		case "t":
			h.time = uint32(n)
		case "p":
			if n > 255 {
				return nil, fmt.Errorf("argon2id hash: p=%d above 255", n)
			}
			h.threads = uint8(n)
		default:
			return nil, fmt.Errorf("argon2id hash: unknown parameter %q", k)
		}
	}
	switch {
	case !seen["m"] || !seen["t"] || !seen["p"]:
		return nil, errors.New("argon2id hash: want parameters m, t and p")
	case h.threads < 1 || h.time < 1 || h.time > maxArgon2Time:
		return nil, fmt.Errorf("argon2id hash: t=%d p=%d out of range", h.time, h.threads)
	case h.memory < 8*uint32(h.threads) || h.memory > maxArgon2Memory:
		return nil, fmt.Errorf("argon2id hash: m=%d out of range [8*p, %d]", h.memory, maxArgon2Memory)
	}
	var err error
	if h.salt, err = decodePHC(parts[4]); err != nil || len(h.salt) < 8 {
		return nil, fmt.Errorf("argon2id hash: salt must be base64 of at least 8 bytes")
	}
	if h.key, err = decodePHC(parts[5]); err != nil || len(h.key) < 16 {
		return nil, fmt.Errorf("argon2id hash: hash must be base64 of at least 16 bytes")
	}
	return h, nil
}

// decodePHC decodes PHC base64 (standard alphabet, no padding; padded
// input is tolerated since some tools emit it).
func decodePHC(s string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// HashSecret hashes secret for the secret_hash field of a registry file
// with algo AlgoBcrypt or AlgoArgon2id.
func HashSecret(secret, algo string) (string, error) {
	if secret == "" {
		return "", errors.New("empty secret")
	}
	switch algo {
	case AlgoBcrypt:
		b, err := bcrypt.GenerateFromPassword([]byte(secret), bcryptCost)
		if err != nil {
			return "", fmt.Errorf("bcrypt: %w", err)
		}
		return string(b), nil
	case AlgoArgon2id:
		salt := make([]byte, argon2SaltLen)
		if _, err := rand.Read(salt); err != nil {
			return "", fmt.Errorf("read salt: %w", err)
		}
		key := argon2.IDKey([]byte(secret), salt, argon2Time, argon2Memory, argon2Threads, argon2KeyLen)
		return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argon2Memory, argon2Time, argon2Threads,
			base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
	default:
		return "", fmt.Errorf("unknown algorithm %q: want %s or %s", algo, AlgoBcrypt, AlgoArgon2id)
	}
}
