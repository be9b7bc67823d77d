package soak

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tmaflow/tmaflow/pkg/budget"
)

// DiskUsage is what a tmaflow data dir holds on disk: allocated blocks,
// as du counts them (what fills the disk), by subdirectory and, for the
// broker, by topic.
type DiskUsage struct {
	Total, Kafka, TSDB, Ruler int64
	// Topics are the bytes of kafka/partitions/<topic>-<n> by topic.
	Topics map[string]int64
}

// MeasureDisk walks dir. Files that vanish meanwhile (retention,
// compaction) are skipped.
func MeasureDisk(dir string) (DiskUsage, error) {
	u := DiskUsage{Topics: map[string]int64{}}
	err := budget.WalkFiles(dir, func(path string, n int64) error {
		u.Total += n
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		switch parts[0] {
		case "kafka":
			u.Kafka += n
			if len(parts) >= 4 && parts[1] == "partitions" {
				u.Topics[TopicOfPartitionDir(parts[2])] += n
			}
		case "tsdb":
			u.TSDB += n
		case "ruler":
			u.Ruler += n
		}
		return nil
	})
	if err != nil {
		return DiskUsage{}, fmt.Errorf("data dir %s: %w", dir, err)
	}
	return u, nil
}

// TopicOfPartitionDir is the topic of an embedded broker's partition
// directory, <url-escaped topic>-<partition>.
func TopicOfPartitionDir(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	topic, err := url.PathUnescape(name[:i])
	if err != nil {
		return name[:i]
	}
	return topic
}
