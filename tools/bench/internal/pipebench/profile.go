package pipebench

import (
	"regexp"

	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

// byService attributes a stack to the service (or background activity)
// that runs it, by priority, with the parts of bus kind that carry
// records: its embedded broker or server, and its clients.
func byService(kind string) []benchkit.Part {
	server, clients := benchkit.BusParts(kind)
	return []benchkit.Part{
		{Name: "monitor (HTTP ingest)", Re: regexp.MustCompile(`services/monitor|net/http\.\(\*conn\)\.serve`)},
		{Name: "labeler", Re: regexp.MustCompile(`services/labeler`)},
		{Name: "persister", Re: regexp.MustCompile(`services/persister`)},
		server,
		clients,
		{Name: "watermill router", Re: regexp.MustCompile(`ThreeDotsLabs/watermill`)},
		{Name: "TSDB background (head GC, compaction, WAL)", Re: regexp.MustCompile(`prometheus/prometheus/tsdb`)},
		benchkit.GoGCPart,
	}
}
