package service

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// FlagSet is the part of *flag.FlagSet that config structs register on.
// Config structs take it so one struct can register under a prefix.
type FlagSet interface {
	StringVar(p *string, name, value, usage string)
	BoolVar(p *bool, name string, value bool, usage string)
	IntVar(p *int, name string, value int, usage string)
	Int64Var(p *int64, name string, value int64, usage string)
	Float64Var(p *float64, name string, value float64, usage string)
	DurationVar(p *time.Duration, name string, value time.Duration, usage string)
	Var(v flag.Value, name, usage string)
}

// Prefixed registers every flag under prefix (e.g. "monitor."), as Loki does
// for its per-component configs.
type Prefixed struct {
	FS     *flag.FlagSet
	Prefix string
}

func (p Prefixed) StringVar(v *string, name, value, usage string) {
	p.FS.StringVar(v, p.Prefix+name, value, usage)
}
func (p Prefixed) BoolVar(v *bool, name string, value bool, usage string) {
	p.FS.BoolVar(v, p.Prefix+name, value, usage)
}
func (p Prefixed) IntVar(v *int, name string, value int, usage string) {
	p.FS.IntVar(v, p.Prefix+name, value, usage)
}
func (p Prefixed) Int64Var(v *int64, name string, value int64, usage string) {
	p.FS.Int64Var(v, p.Prefix+name, value, usage)
}
func (p Prefixed) Float64Var(v *float64, name string, value float64, usage string) {
	p.FS.Float64Var(v, p.Prefix+name, value, usage)
}
func (p Prefixed) DurationVar(v *time.Duration, name string, value time.Duration, usage string) {
	p.FS.DurationVar(v, p.Prefix+name, value, usage)
}
func (p Prefixed) Var(v flag.Value, name, usage string) { p.FS.Var(v, p.Prefix+name, usage) }

// EnvName is the environment variable that sets a flag: TMAFLOW_ and the
// flag name upper-cased with '.' and '-' turned into '_'
// (kafka.brokers → TMAFLOW_KAFKA_BROKERS).
func EnvName(flagName string) string {
	return "TMAFLOW_" + strings.NewReplacer(".", "_", "-", "_").Replace(strings.ToUpper(flagName))
}

// Parse parses args, then fills every flag not given on the command line
// from its environment variable. Command-line flags win over the environment.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("environment %s=%q: %w", EnvName(f.Name), v, e)
			}
		}
	})
	return err
}

// StringList is a comma-separated list flag.
type StringList []string

func (l *StringList) String() string { return strings.Join(*l, ",") }

// Set replaces the list with the comma-separated values of s.
func (l *StringList) Set(s string) error {
	*l = (*l)[:0]
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}
