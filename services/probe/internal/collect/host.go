package collect

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/blockdevice"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// Host parts (config names).
const (
	PartCPU        = "cpu"
	PartMemory     = "memory"
	PartLoad       = "load"
	PartDisk       = "disk"
	PartFilesystem = "filesystem"
	PartNetwork    = "network"
	PartPressure   = "pressure"
	PartHwmon      = "hwmon"
)

// HostParts are every host part, the default.
func HostParts() []string {
	return []string{PartCPU, PartMemory, PartLoad, PartDisk, PartFilesystem, PartNetwork, PartPressure, PartHwmon}
}

// HostOptions configure the host collector.
type HostOptions struct {
	ProcPath string // "/proc"
	SysPath  string // "/sys"
	Parts    []string
	// Statfs reads a mounted filesystem's sizes (nil: statfs(2)).
	Statfs func(path string) (FSStat, error)
}

// Host collects host metrics named as node_exporter names them.
type Host struct {
	opts  HostOptions
	proc  procfs.FS
	block blockdevice.FS
	parts map[string]func(*builder) error
}

// NewHost checks the paths and parts.
func NewHost(opts HostOptions) (*Host, error) {
	if opts.ProcPath == "" {
		opts.ProcPath = "/proc"
	}
	if opts.SysPath == "" {
		opts.SysPath = "/sys"
	}
	if len(opts.Parts) == 0 {
		opts.Parts = HostParts()
	}
	if opts.Statfs == nil {
		opts.Statfs = statfs
	}
	proc, err := procfs.NewFS(opts.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", opts.ProcPath, err)
	}
	block, err := blockdevice.NewFS(opts.ProcPath, opts.SysPath)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", opts.SysPath, err)
	}
	h := &Host{opts: opts, proc: proc, block: block, parts: map[string]func(*builder) error{}}
	all := map[string]func(*builder) error{
		PartCPU: h.cpu, PartMemory: h.memory, PartLoad: h.load, PartDisk: h.disk,
		PartFilesystem: h.filesystem, PartNetwork: h.network, PartPressure: h.pressure, PartHwmon: h.hwmon,
	}
	for _, p := range opts.Parts {
		f, ok := all[p]
		if !ok {
			return nil, fmt.Errorf("host part %q: want one of %s", p, strings.Join(HostParts(), ", "))
		}
		h.parts[p] = f
	}
	return h, nil
}

// Collect samples every part. A part that fails is reported in the
// error; the others' series are still returned.
func (h *Host) Collect(_ context.Context, now time.Time) ([]samples.Series, error) {
	b := &builder{t: now.UnixMilli()}
	var errs []error
	for _, p := range h.opts.Parts {
		if err := h.parts[p](b); err != nil {
			errs = append(errs, fmt.Errorf("host %s: %w", p, err))
		}
	}
	return b.series, errors.Join(errs...)
}

// cpuModes are node_cpu_seconds_total's modes, as node_exporter names them.
var cpuModes = []string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}

func (h *Host) cpu(b *builder) error {
	st, err := h.proc.Stat()
	if err != nil {
		return err
	}
	cpus := make([]int64, 0, len(st.CPU))
	for id := range st.CPU {
		cpus = append(cpus, id)
	}
	slices.Sort(cpus)
	for _, id := range cpus {
		c := st.CPU[id]
		cpu := strconv.FormatInt(id, 10)
		for i, v := range []float64{c.User, c.Nice, c.System, c.Idle, c.Iowait, c.IRQ, c.SoftIRQ, c.Steal} {
			b.add("node_cpu_seconds_total", v, "cpu", cpu, "mode", cpuModes[i])
		}
		b.add("node_cpu_guest_seconds_total", c.Guest, "cpu", cpu, "mode", "user")
		b.add("node_cpu_guest_seconds_total", c.GuestNice, "cpu", cpu, "mode", "nice")
	}
	b.add("node_boot_time_seconds", float64(st.BootTime))
	b.add("node_context_switches_total", float64(st.ContextSwitches))
	b.add("node_intr_total", float64(st.IRQTotal))
	b.add("node_forks_total", float64(st.ProcessCreated))
	b.add("node_procs_running", float64(st.ProcessesRunning))
	b.add("node_procs_blocked", float64(st.ProcessesBlocked))
	return nil
}

// meminfoKey makes a meminfo field a metric name part, as node_exporter.
var meminfoKey = strings.NewReplacer("(", "_", ")", "")

// memory reads /proc/meminfo as node_exporter's meminfo collector does:
// every field becomes node_memory_<field>_bytes ("Active(anon)" →
// "Active_anon"), in bytes when the file says kB, else as a count
// without the _bytes suffix (HugePages_Total).
func (h *Host) memory(b *builder) error {
	data, err := os.ReadFile(filepath.Join(h.opts.ProcPath, "meminfo"))
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return fmt.Errorf("meminfo %q: %w", sc.Text(), err)
		}
		key := meminfoKey.Replace(strings.TrimSuffix(f[0], ":"))
		if len(f) == 3 && f[2] == "kB" {
			b.add("node_memory_"+key+"_bytes", v*1024)
		} else {
			b.add("node_memory_"+key, v)
		}
	}
	return sc.Err()
}

func (h *Host) load(b *builder) error {
	l, err := h.proc.LoadAvg()
	if err != nil {
		return err
	}
	b.add("node_load1", l.Load1)
	b.add("node_load5", l.Load5)
	b.add("node_load15", l.Load15)
	return nil
}

// sectorSize is the unit of /proc/diskstats' sector counts.
const sectorSize = 512

func (h *Host) disk(b *builder) error {
	stats, err := h.block.ProcDiskstats()
	if err != nil {
		return err
	}
	for _, d := range stats {
		// Partitions and virtual devices are what node_exporter's
		// default device-exclude leaves out too.
		if skipDisk(d.DeviceName) {
			continue
		}
		dev := d.DeviceName
		b.add("node_disk_reads_completed_total", float64(d.ReadIOs), "device", dev)
		b.add("node_disk_reads_merged_total", float64(d.ReadMerges), "device", dev)
		b.add("node_disk_read_bytes_total", float64(d.ReadSectors)*sectorSize, "device", dev)
		b.add("node_disk_read_time_seconds_total", float64(d.ReadTicks)/1000, "device", dev)
		b.add("node_disk_writes_completed_total", float64(d.WriteIOs), "device", dev)
		b.add("node_disk_writes_merged_total", float64(d.WriteMerges), "device", dev)
		b.add("node_disk_written_bytes_total", float64(d.WriteSectors)*sectorSize, "device", dev)
		b.add("node_disk_write_time_seconds_total", float64(d.WriteTicks)/1000, "device", dev)
		b.add("node_disk_io_now", float64(d.IOsInProgress), "device", dev)
		b.add("node_disk_io_time_seconds_total", float64(d.IOsTotalTicks)/1000, "device", dev)
		b.add("node_disk_io_time_weighted_seconds_total", float64(d.WeightedIOTicks)/1000, "device", dev)
	}
	return nil
}

// skipDisk is node_exporter's default --collector.diskstats.device-exclude:
// ^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$
func skipDisk(name string) bool {
	for _, p := range []string{"ram", "zram", "loop", "fd"} {
		if rest, ok := strings.CutPrefix(name, p); ok && digits(rest) {
			return true
		}
	}
	for _, p := range []string{"hd", "sd", "vd", "xvd"} {
		if rest, ok := strings.CutPrefix(name, p); ok && len(rest) > 1 && rest[0] >= 'a' && rest[0] <= 'z' && digits(rest[1:]) {
			return true
		}
	}
	if rest, ok := strings.CutPrefix(name, "nvme"); ok {
		if i := strings.LastIndexByte(rest, 'p'); i > 0 && digits(rest[i+1:]) && strings.Contains(rest[:i], "n") {
			return true
		}
	}
	return false
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (h *Host) network(b *builder) error {
	nd, err := h.proc.NetDev()
	if err != nil {
		return err
	}
	names := make([]string, 0, len(nd))
	for n := range nd {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		d := nd[n]
		for _, m := range []struct {
			name string
			v    uint64
		}{
			{"receive_bytes", d.RxBytes}, {"receive_packets", d.RxPackets}, {"receive_errs", d.RxErrors}, {"receive_drop", d.RxDropped},
			{"receive_fifo", d.RxFIFO}, {"receive_frame", d.RxFrame}, {"receive_compressed", d.RxCompressed}, {"receive_multicast", d.RxMulticast},
			{"transmit_bytes", d.TxBytes}, {"transmit_packets", d.TxPackets}, {"transmit_errs", d.TxErrors}, {"transmit_drop", d.TxDropped},
			{"transmit_fifo", d.TxFIFO}, {"transmit_colls", d.TxCollisions}, {"transmit_carrier", d.TxCarrier}, {"transmit_compressed", d.TxCompressed},
		} {
			b.add("node_network_"+m.name+"_total", float64(m.v), "device", n)
		}
	}
	return nil
}

// pressure reads /proc/pressure; a kernel without PSI has no such
// directory, which is no error.
func (h *Host) pressure(b *builder) error {
	for _, r := range []string{"cpu", "io", "memory"} {
		st, err := h.proc.PSIStatsForResource(r)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if st.Some != nil {
			b.add("node_pressure_"+r+"_waiting_seconds_total", float64(st.Some.Total)/1e6)
		}
		// cpu's "full" line exists since Linux 5.13 and node_exporter
		// exports it as node_pressure_cpu_stalled_seconds_total too.
		if st.Full != nil {
			b.add("node_pressure_"+r+"_stalled_seconds_total", float64(st.Full.Total)/1e6)
		}
	}
	return nil
}
