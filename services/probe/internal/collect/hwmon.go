package collect

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// hwmon reads temperatures from /sys/class/hwmon as node_exporter names
// them: node_hwmon_temp_celsius{chip,sensor}. A host without sensors has
// none, which is no error.
func (h *Host) hwmon(b *builder) error {
	dirs, err := filepath.Glob(filepath.Join(h.opts.SysPath, "class", "hwmon", "hwmon*"))
	if err != nil {
		return err
	}
	slices.Sort(dirs)
	var errs []error
	for _, dir := range dirs {
		chip := hwmonChip(dir)
		if name, err := os.ReadFile(filepath.Join(dir, "name")); err == nil {
			b.add("node_hwmon_chip_names", 1, "chip", chip, "chip_name", strings.TrimSpace(string(name)))
		}
		inputs, err := filepath.Glob(filepath.Join(dir, "temp*_input"))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		slices.Sort(inputs)
		for _, in := range inputs {
			raw, err := os.ReadFile(in)
			if err != nil {
				// A sensor that cannot be read now (ENXIO, EAGAIN) is
				// skipped this time, as node_exporter does.
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(string(raw)), 64)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			sensor := strings.TrimSuffix(filepath.Base(in), "_input")
			b.add("node_hwmon_temp_celsius", v/1000, "chip", chip, "sensor", sensor)
		}
	}
	return errors.Join(errs...)
}

// hwmonChip names a chip by its device ("platform_coretemp_0"), or by the
// hwmon directory when it has none.
func hwmonChip(dir string) string {
	dev, err := filepath.EvalSymlinks(filepath.Join(dir, "device"))
	if err != nil {
		return filepath.Base(dir)
	}
	name := filepath.Base(dev)
	if sub, err := filepath.EvalSymlinks(filepath.Join(dev, "subsystem")); err == nil {
		name = filepath.Base(sub) + "_" + name
	}
	return sanitize(name)
}
