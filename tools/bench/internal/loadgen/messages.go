package loadgen

import (
	"fmt"
	"strconv"
	"time"
)

// Messages returns n distinct TMA messages of probe probeID, each with
// dataItems data items of obsPerItem observations, spread over resources
// 0..resources-1 so records spread over partitions. Values and times
// differ per message as a real probe's would.
func Messages(n, probeID, resources, dataItems, obsPerItem int, now time.Time) [][]byte {
	out := make([][]byte, n)
	sec := now.Unix()
	for i := range out {
		b := make([]byte, 0, 64+dataItems*(60+obsPerItem*45))
		b = fmt.Appendf(b, `{"probeId":%d,"resourceId":%d,"messageId":%d,"sentTime":%d,"data":[`,
			probeID, i%resources, i, sec)
		for d := range dataItems {
			if d > 0 {
				b = append(b, ',')
			}
			typ := "measurement"
			if d%5 == 4 {
				typ = "event"
			}
			b = fmt.Appendf(b, `{"descriptionId":%d,"type":%q,"observations":[`, d, typ)
			for o := range obsPerItem {
				if o > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"time":`...)
				b = strconv.AppendInt(b, sec-int64(obsPerItem-1-o), 10)
				b = append(b, `,"value":`...)
				b = strconv.AppendFloat(b, float64(i*31+d*7+o)+0.25, 'f', -1, 64)
				b = append(b, '}')
			}
			b = append(b, "]}"...)
		}
		out[i] = append(b, "]}"...)
	}
	return out
}
