package registry

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// maxSecretLen bounds what hash-secret reads from stdin.
const maxSecretLen = 4096

// HashSecretCommand runs the hash-secret subcommand: it hashes a secret
// given by --secret or as the first line of stdin and prints the hash for
// a registry file's secret_hash. name is the command name shown in usage
// ("monitor hash-secret").
func HashSecretCommand(name string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	algo := fs.String("algo", AlgoArgon2id, "Hash algorithm: "+AlgoArgon2id+" or "+AlgoBcrypt+".")
	secret := fs.String("secret", "", "The secret; read from the first line of stdin when not given (safer: not in the process list or shell history).")
	fs.Usage = func() {
		_, _ = fmt.Fprintf(stderr, "Usage: %s [--algo argon2id|bcrypt] [--secret S] < secret\n\nPrints the hash of a probe secret for the registry file.\n\n", name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", name, fs.Args())
	}
	s := *secret
	if s == "" {
		line, err := bufio.NewReader(io.LimitReader(stdin, maxSecretLen+2)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read secret from stdin: %w", err)
		}
		s = strings.TrimRight(line, "\r\n")
		if len(s) > maxSecretLen {
			return fmt.Errorf("read secret from stdin: longer than %d bytes", maxSecretLen)
		}
	}
	if s == "" {
		return errors.New("read secret: empty (give --secret or a line on stdin)")
	}
	h, err := HashSecret(s, *algo)
	if err != nil {
		return fmt.Errorf("hash secret: %w", err)
	}
	_, err = fmt.Fprintln(stdout, h)
	return err
}
