package benchkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// StartPrometheus starts the Prometheus binary bin as a remote-write
// receiver on a free port, with no scrape targets, its TSDB in
// dir/<name>-data and its log in dir/<name>.log, and waits until it is
// ready, with extra flags appended. addr is its host:port.
func StartPrometheus(ctx context.Context, bin, dir, name string, extra ...string) (p *Process, addr string, err error) {
	ports, err := FreePorts(1)
	if err != nil {
		return nil, "", err
	}
	addr = ports[0]
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte("global:\n  scrape_interval: 1m\n"), 0o644); err != nil {
		return nil, "", fmt.Errorf("prometheus config: %w", err)
	}
	p, err = StartProcess("prometheus", bin, append([]string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(dir, name+"-data"),
		"--web.listen-address=" + addr,
		"--web.enable-remote-write-receiver",
		"--log.level=warn",
	}, extra...), filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, "", err
	}
	if err := WaitReady(ctx, p, "http://"+addr+"/-/ready", time.Minute); err != nil {
		return nil, "", errors.Join(err, p.Stop(time.Minute))
	}
	return p, addr, nil
}
