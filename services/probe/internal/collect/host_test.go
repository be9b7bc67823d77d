package collect

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// key renders a series as name{a="b",...} for lookups.
func key(s samples.Series) string {
	var b strings.Builder
	var rest []string
	for _, l := range s.Labels {
		if l.Name == "__name__" {
			b.WriteString(l.Value)
			continue
		}
		rest = append(rest, l.Name+"="+`"`+l.Value+`"`)
	}
	if len(rest) > 0 {
		b.WriteString("{" + strings.Join(rest, ",") + "}")
	}
	return b.String()
}

func byKey(t *testing.T, series []samples.Series, ts int64) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, s := range series {
		require.Len(t, s.Samples, 1)
		require.Equal(t, ts, s.Samples[0].TimestampMs, "stamped at sampling time")
		k := key(s)
		_, dup := out[k]
		require.False(t, dup, "series %s twice", k)
		out[k] = s.Samples[0].Value
	}
	return out
}

func fixtureHost(t *testing.T, parts ...string) *Host {
	t.Helper()
	h, err := NewHost(HostOptions{
		ProcPath: "testdata/proc", SysPath: "testdata/sys", Parts: parts,
		Statfs: func(path string) (FSStat, error) {
			return FSStat{Size: 1000, Free: 400, Avail: 300, Files: 50, FilesFree: 20}, nil
		},
	})
	require.NoError(t, err)
	return h
}

func TestHostFixtures(t *testing.T) {
	now := time.UnixMilli(1_700_000_123_456)
	for _, tc := range []struct {
		part   string
		want   map[string]float64
		absent []string
	}{
		{part: PartCPU, want: map[string]float64{
			`node_cpu_seconds_total{cpu="0",mode="user"}`:   10,
			`node_cpu_seconds_total{cpu="1",mode="idle"}`:   250,
			`node_cpu_seconds_total{cpu="1",mode="steal"}`:  0.03,
			`node_cpu_seconds_total{cpu="0",mode="iowait"}`: 1,
			`node_boot_time_seconds`:                        1700000000,
			`node_context_switches_total`:                   987654,
			`node_procs_running`:                            3,
			`node_procs_blocked`:                            1,
			`node_forks_total`:                              4242,
		}},
		{part: PartMemory, want: map[string]float64{
			`node_memory_MemTotal_bytes`:     2048000 * 1024,
			`node_memory_MemAvailable_bytes`: 1024000 * 1024,
			`node_memory_Active_anon_bytes`:  40000 * 1024,
			`node_memory_HugePages_Total`:    0,
		}},
		{part: PartLoad, want: map[string]float64{`node_load1`: 0.5, `node_load5`: 0.25, `node_load15`: 0.125}},
		{part: PartDisk, want: map[string]float64{
			`node_disk_read_bytes_total{device="sda"}`:             20000 * 512,
			`node_disk_written_bytes_total{device="sda"}`:          8000 * 512,
			`node_disk_reads_completed_total{device="nvme0n1"}`:    2000,
			`node_disk_io_time_seconds_total{device="sda"}`:        0.6,
			`node_disk_write_time_seconds_total{device="nvme0n1"}`: 0.2,
		}, absent: []string{`node_disk_read_bytes_total{device="sda1"}`, `node_disk_read_bytes_total{device="loop0"}`, `node_disk_read_bytes_total{device="nvme0n1p1"}`}},
		{part: PartNetwork, want: map[string]float64{
			`node_network_receive_bytes_total{device="eth0"}`:     5000000,
			`node_network_transmit_bytes_total{device="eth0"}`:    3000000,
			`node_network_receive_errs_total{device="eth0"}`:      1,
			`node_network_transmit_drop_total{device="eth0"}`:     3,
			`node_network_receive_multicast_total{device="eth0"}`: 7,
			`node_network_receive_packets_total{device="lo"}`:     100,
		}},
		{part: PartFilesystem, want: map[string]float64{
			`node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"}`:   300,
			`node_filesystem_size_bytes{device="/dev/sda2",fstype="xfs",mountpoint="/data"}`: 1000,
			`node_filesystem_readonly{device="/dev/sda2",fstype="xfs",mountpoint="/data"}`:   1,
			`node_filesystem_readonly{device="/dev/sda1",fstype="ext4",mountpoint="/"}`:      0,
			`node_filesystem_files_free{device="tmpfs",fstype="tmpfs",mountpoint="/run"}`:    20,
		}, absent: []string{`node_filesystem_avail_bytes{device="proc",fstype="proc",mountpoint="/proc"}`}},
		{part: PartPressure, want: map[string]float64{
			`node_pressure_cpu_waiting_seconds_total`:    1.5,
			`node_pressure_cpu_stalled_seconds_total`:    0,
			`node_pressure_io_waiting_seconds_total`:     2,
			`node_pressure_io_stalled_seconds_total`:     1,
			`node_pressure_memory_stalled_seconds_total`: 0.1,
		}},
		{part: PartHwmon, want: map[string]float64{
			`node_hwmon_temp_celsius{chip="hwmon0",sensor="temp1"}`:     45.5,
			`node_hwmon_temp_celsius{chip="hwmon0",sensor="temp2"}`:     51,
			`node_hwmon_chip_names{chip="hwmon0",chip_name="coretemp"}`: 1,
		}},
	} {
		t.Run(tc.part, func(t *testing.T) {
			series, err := fixtureHost(t, tc.part).Collect(context.Background(), now)
			require.NoError(t, err)
			got := byKey(t, series, now.UnixMilli())
			for k, v := range tc.want {
				require.Contains(t, got, k)
				require.InDelta(t, v, got[k], 1e-9, k)
			}
			for _, k := range tc.absent {
				require.NotContains(t, got, k)
			}
		})
	}
}

func TestHostMissingParts(t *testing.T) {
	// A kernel without PSI or sensors has neither directory: no error,
	// no series.
	h, err := NewHost(HostOptions{ProcPath: t.TempDir(), SysPath: t.TempDir(), Parts: []string{PartPressure, PartHwmon}})
	require.NoError(t, err)
	series, err := h.Collect(context.Background(), time.Now())
	require.NoError(t, err)
	require.Empty(t, series)

	_, err = NewHost(HostOptions{ProcPath: "testdata/proc", SysPath: "testdata/sys", Parts: []string{"gpu"}})
	require.ErrorContains(t, err, `host part "gpu"`)
}

func TestHostLive(t *testing.T) {
	// The real /proc of the machine the test runs on: every default part
	// but the optional ones yields series.
	series, err := fixtureHostReal(t).Collect(context.Background(), time.Now())
	require.NoError(t, err)
	names := map[string]bool{}
	for _, s := range series {
		names[s.Labels[0].Value] = true
	}
	for _, n := range []string{"node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_load1", "node_network_receive_bytes_total", "node_filesystem_avail_bytes"} {
		require.True(t, names[n], n)
	}
}

func fixtureHostReal(t *testing.T) *Host {
	t.Helper()
	h, err := NewHost(HostOptions{})
	require.NoError(t, err)
	return h
}
