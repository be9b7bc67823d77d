package app

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// keygenCommand prints a new ed25519 key pair: the private key (base64)
// to keep on the signing side, the public key to pin in probes.
func keygenCommand(name string, args []string, _ io.Reader, stdout, _ io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("%s: no arguments expected", name)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "private_key: %s\npublic_key: %s\n",
		base64.StdEncoding.EncodeToString(priv), base64.StdEncoding.EncodeToString(pub))
	return err
}

// signCommand prints the base64 signature of a configuration file, to
// serve beside it (<probe>.yaml.sig next to <probe>.yaml on the monitor).
func signCommand(name string, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("key-file", "", "File holding the ed25519 private key: keygen's output as written, or the base64 private key alone.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *keyFile == "" || fs.NArg() != 1 {
		return errors.New("usage: probe sign -key-file=KEY CONFIG.yaml")
	}
	raw, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("read key %s: %w", *keyFile, err)
	}
	key, err := parsePrivateKey(raw)
	if err != nil {
		return fmt.Errorf("read key %s: %w", *keyFile, err)
	}
	body, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("read config %s: %w", fs.Arg(0), err)
	}
	_, err = fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(ed25519.Sign(ed25519.PrivateKey(key), body)))
	return err
}

// parsePrivateKey reads a signing key file: keygen's output (its
// private_key: line; the public_key: line is ignored) or the base64
// private key alone on one line.
func parsePrivateKey(raw []byte) (ed25519.PrivateKey, error) {
	var value string
	var found bool
	var bare []string
	for line := range strings.Lines(string(raw)) {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "private_key:"); ok {
			if found {
				return nil, errors.New("private_key: given twice")
			}
			value, found = strings.Trim(strings.TrimSpace(v), `"'`), true
			continue
		}
		if line != "" && !strings.HasPrefix(line, "public_key:") {
			bare = append(bare, line)
		}
	}
	if !found {
		if len(bare) != 1 {
			return nil, errors.New("no private_key: line: want keygen's output or the base64 private key alone")
		}
		value = bare[0]
	}
	key, err := base64.StdEncoding.DecodeString(value)
	if err != nil || len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("want the base64 of a %d-byte ed25519 private key", ed25519.PrivateKeySize)
	}
	return ed25519.PrivateKey(key), nil
}
