package collect

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
)

// FSStat is what statfs(2) says of a mounted filesystem, in bytes and
// inodes.
type FSStat struct {
	Size, Free, Avail float64
	Files, FilesFree  float64
}

func statfs(path string) (FSStat, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return FSStat{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := float64(st.Bsize)
	return FSStat{
		Size: float64(st.Blocks) * bs, Free: float64(st.Bfree) * bs, Avail: float64(st.Bavail) * bs,
		Files: float64(st.Files), FilesFree: float64(st.Ffree),
	}, nil
}

// node_exporter's default mount-point and fs-type excludes.
var (
	skipMountPoint = regexp.MustCompile(`^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`)
	skipFSType     = regexp.MustCompile(`^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$`)
)

// filesystem reports the mounts of PID 1 (the host's, also from inside a
// container with the host's /proc) as node_exporter does.
func (h *Host) filesystem(b *builder) error {
	mounts, err := h.proc.GetProcMounts(1)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
		mounts, err = h.proc.GetMounts()
	}
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var errs []error
	for _, m := range mounts {
		if skipMountPoint.MatchString(m.MountPoint) || skipFSType.MatchString(m.FSType) || seen[m.MountPoint] {
			continue
		}
		seen[m.MountPoint] = true
		st, err := h.opts.Statfs(m.MountPoint)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ls := []string{"device", m.Source, "fstype", m.FSType, "mountpoint", m.MountPoint}
		ro := 0.0
		if _, ok := m.Options["ro"]; ok {
			ro = 1
		}
		b.add("node_filesystem_size_bytes", st.Size, ls...)
		b.add("node_filesystem_free_bytes", st.Free, ls...)
		b.add("node_filesystem_avail_bytes", st.Avail, ls...)
		b.add("node_filesystem_files", st.Files, ls...)
		b.add("node_filesystem_files_free", st.FilesFree, ls...)
		b.add("node_filesystem_readonly", ro, ls...)
	}
	return errors.Join(errs...)
}

// sanitize makes a label value as node_exporter's hwmon collector does.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}
