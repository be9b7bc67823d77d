package benchkit

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"time"
)

// Load is the shape of a TMA load against tmaflow's monitor: which
// resources send, how many observations per message, over how many
// connections.
type Load struct {
	// FirstResource is the first resourceId; Resources ids follow it.
	FirstResource int64
	Resources     int
	DataItems     int
	Concurrency   int
}

// RegisterFlags registers the load's flags; concurrency is the default
// of -concurrency.
func (l *Load) RegisterFlags(fs *flag.FlagSet, concurrency int) {
	fs.Int64Var(&l.FirstResource, "first-resource", 101098, "First resourceId (the demo registry's resource); the others follow it.")
	fs.IntVar(&l.Resources, "resources", 256, "Distinct resources: each makes data-items series.")
	fs.IntVar(&l.DataItems, "data-items", 20, "Data items (of one observation each) per message: samples per message.")
	fs.IntVar(&l.Concurrency, "concurrency", concurrency, "Connections posting to the monitor.")
}

// SendConfig is the load at rate messages/s (0: closed loop), one message
// per request, posted to the monitor at monitorAddr as s's probe.
func (l Load) SendConfig(s Setup, monitorAddr string, rate float64) SendConfig {
	res := make([]int64, l.Resources)
	for i := range res {
		res[i] = l.FirstResource + int64(i)
	}
	return SendConfig{
		URL: "http://" + monitorAddr + "/monitor", User: s.User, Password: s.Password,
		ProbeID: s.ProbeID, Resources: res, DataItems: l.DataItems,
		Batch: 1, Concurrency: l.Concurrency, Rate: rate,
	}
}

// SendFirst posts one message of cfg's first resource, a minute old (so
// it comes before the load's timestamps of that resource): it pays for
// the credential hash (bcrypt) that later requests get from the
// registry's cache, and proves the setup.
func SendFirst(ctx context.Context, cfg SendConfig) error {
	body := AppendMessage(nil, cfg.ProbeID, cfg.Resources[0], 0, time.Now().Add(-time.Minute).UnixMilli(), cfg.DataItems, nil)
	status, err := Post(ctx, http.DefaultClient, cfg, body)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("status %d", status)
	}
	if err != nil {
		return fmt.Errorf("first message to %s as %s: %w", cfg.URL, cfg.User, err)
	}
	return nil
}
