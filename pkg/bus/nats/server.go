package nats

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/tmaflow/tmaflow/pkg/service"
)

// SyncAlways is the -nats.sync-interval that fsyncs every write before the
// stream acknowledges it.
const SyncAlways = "always"

// ServerConfig configures the embedded NATS server (nats-server in
// process, JetStream on disk).
type ServerConfig struct {
	ListenAddress string
	StoreDir      string
	// SyncInterval is SyncAlways or a duration: how often JetStream fsyncs
	// its files. NATS's default is 2m, which loses acknowledged messages
	// when the machine (not just the process) goes down within it.
	SyncInterval string
	// MaxStore bounds JetStream's disk use (-1: the server's default, a
	// share of the free disk).
	MaxStore int64
}

// RegisterFlags registers the embedded server's flags (nats.*).
func (c *ServerConfig) RegisterFlags(f service.FlagSet) {
	f.StringVar(&c.ListenAddress, "nats.listen-address", "127.0.0.1:4222",
		"Address the embedded NATS server listens on (port 0 picks a free one).")
	f.StringVar(&c.StoreDir, "nats.store-dir", "",
		"Directory of the embedded server's JetStream files (default <data-dir>/nats in tmaflow).")
	f.StringVar(&c.SyncInterval, "nats.sync-interval", SyncAlways,
		"How often the embedded JetStream fsyncs: 'always' (before every acknowledgement: no acknowledged message is lost in a power cut or kernel crash) or a duration (NATS's default is 2m; Jepsen lost acknowledged writes with it, nats-server #7564).")
	f.Int64Var(&c.MaxStore, "nats.max-store", -1, "Bytes of disk JetStream may use (-1: the server's default).")
}

// Validate checks the server configuration.
func (c ServerConfig) Validate() error {
	var errs []error
	if _, _, err := c.hostPort(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.syncInterval(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxStore <= 0 && c.MaxStore != -1 {
		errs = append(errs, fmt.Errorf("nats.max-store must be > 0 or -1, got %d", c.MaxStore))
	}
	return errors.Join(errs...)
}

func (c ServerConfig) hostPort() (string, int, error) {
	host, p, err := net.SplitHostPort(c.ListenAddress)
	if err != nil {
		return "", 0, fmt.Errorf("nats.listen-address %q: %w", c.ListenAddress, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("nats.listen-address %q: bad port", c.ListenAddress)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// syncInterval returns 0 for always.
func (c ServerConfig) syncInterval() (time.Duration, error) {
	if c.SyncInterval == SyncAlways {
		return 0, nil
	}
	d, err := time.ParseDuration(c.SyncInterval)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("nats.sync-interval must be %q or a positive duration, got %q", SyncAlways, c.SyncInterval)
	}
	return d, nil
}

// Server is a running embedded NATS server.
type Server struct {
	ns *server.Server
}

// StartServer starts the server and waits until it accepts connections.
func StartServer(cfg ServerConfig, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	host, port, _ := cfg.hostPort()
	interval, _ := cfg.syncInterval()
	opts := &server.Options{
		ServerName:        "tmaflow",
		Host:              host,
		Port:              port,
		JetStream:         true,
		StoreDir:          cfg.StoreDir,
		JetStreamMaxStore: cfg.MaxStore,
		SyncAlways:        interval == 0,
		SyncInterval:      interval,
		NoSigs:            true,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats server: %w", err)
	}
	if logger != nil {
		ns.SetLoggerV2(serverLogger{logger}, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats server on %s: not ready after 30s", cfg.ListenAddress)
	}
	return &Server{ns: ns}, nil
}

// URL is the client URL of the server.
func (s *Server) URL() string {
	u := s.ns.ClientURL()
	if pu, err := url.Parse(u); err == nil && pu.Hostname() == "0.0.0.0" {
		pu.Host = net.JoinHostPort("127.0.0.1", pu.Port())
		return pu.String()
	}
	return u
}

// Close stops the server; JetStream's files are flushed and closed.
func (s *Server) Close() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// serverLogger adapts slog to nats-server's logger. Notices are at debug:
// the server tells much at start that the process does not need to.
type serverLogger struct{ l *slog.Logger }

func (s serverLogger) Noticef(format string, v ...any) {
	s.l.Debug("nats server", "msg", fmt.Sprintf(format, v...))
}
func (s serverLogger) Warnf(format string, v ...any) {
	s.l.Warn("nats server", "msg", fmt.Sprintf(format, v...))
}
func (s serverLogger) Fatalf(format string, v ...any) {
	s.l.Error("nats server fatal", "msg", fmt.Sprintf(format, v...))
}
func (s serverLogger) Errorf(format string, v ...any) {
	s.l.Error("nats server", "msg", fmt.Sprintf(format, v...))
}
func (s serverLogger) Debugf(format string, v ...any) {
	s.l.Debug("nats server", "msg", fmt.Sprintf(format, v...))
}
func (s serverLogger) Tracef(string, ...any) {}
