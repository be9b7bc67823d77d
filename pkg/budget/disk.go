package budget

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
)

// dirSize sums what the regular files under dir take on disk.
func dirSize(dir string) (int64, error) {
	var n int64
	err := WalkFiles(dir, func(_ string, size int64) error {
		n += size
		return nil
	})
	return n, err
}

// WalkFiles calls fn with the path and the disk space (allocated blocks:
// a preallocated or sparse file counts what it really holds) of every
// regular file under dir. Files that vanish while it walks (retention,
// compaction) are skipped.
func WalkFiles(dir string, fn func(path string, allocated int64) error) error {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		return fn(path, allocated(info))
	})
	if err != nil {
		return fmt.Errorf("walk %s: %w", dir, err)
	}
	return nil
}

// freeBytes is what an unprivileged process may still write on dir's file
// system.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// allocated is the disk space a file takes: its blocks where the system
// reports them, else its size.
func allocated(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return info.Size()
}
