package ship

import (
	"strconv"
	"strings"

	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/services/probe/internal/collect"
)

// EncodeText writes series in the Prometheus text format 0.0.4, every
// sample with its timestamp in ms.
func EncodeText(series []samples.Series) []byte {
	var b strings.Builder
	for _, s := range series {
		name := collect.MetricName(s.Labels)
		var ls strings.Builder
		first := true
		for _, l := range s.Labels {
			if l.Name == "__name__" {
				continue
			}
			if first {
				ls.WriteByte('{')
				first = false
			} else {
				ls.WriteByte(',')
			}
			ls.WriteString(l.Name)
			ls.WriteString(`="`)
			ls.WriteString(escapeLabel(l.Value))
			ls.WriteByte('"')
		}
		if !first {
			ls.WriteByte('}')
		}
		for _, smp := range s.Samples {
			b.WriteString(name)
			b.WriteString(ls.String())
			b.WriteByte(' ')
			b.WriteString(strconv.FormatFloat(smp.Value, 'g', -1, 64))
			b.WriteByte(' ')
			b.WriteString(strconv.FormatInt(smp.TimestampMs, 10))
			b.WriteByte('\n')
		}
	}
	return []byte(b.String())
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escapeLabel(v string) string { return labelEscaper.Replace(v) }
