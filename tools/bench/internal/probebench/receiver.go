package probebench

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

// receiver is a remote_write receiver counting samples and distinct
// series by sender (the first path element: /probe/…, /stack/…).
type receiver struct {
	srv *http.Server
	ln  net.Listener

	mu      sync.Mutex
	samples map[string]int64
	series  map[string]map[string]bool
}

func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{ln: ln, samples: map[string]int64{}, series: map[string]map[string]bool{}}
	r.srv = &http.Server{Handler: r}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) url(sender string) string {
	return "http://" + r.ln.Addr().String() + "/" + sender + "/api/v1/write"
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	sender, _, _ := strings.Cut(strings.TrimPrefix(req.URL.Path, "/"), "/")
	b, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	raw, err := snappy.Decode(nil, b)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(raw); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.series[sender] == nil {
		r.series[sender] = map[string]bool{}
	}
	for _, ts := range wr.Timeseries {
		r.samples[sender] += int64(len(ts.Samples))
		r.series[sender][benchkit.LabelsKey(ts.Labels)] = true
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) counts(sender string) (samples int64, series int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.samples[sender], len(r.series[sender])
}

func (r *receiver) close() error { return r.srv.Close() }
