package monitor

import (
	"errors"
)

// errNoSamples is a 2.0 series without samples (the spec requires one).
var errNoSamples = errors.New("series has no samples")
