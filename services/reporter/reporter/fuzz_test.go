package reporter

import (
	"os"
	"strings"
	"testing"
)

// FuzzParseFile: any bytes give reports or an error naming the file,
// never a panic, and every report returned is complete.
func FuzzParseFile(f *testing.F) {
	for _, p := range []string{"testdata/reports/demo/daily.yaml", "../../../examples/reports/demo/overview.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := ParseFile("demo", "f.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		for _, r := range rs {
			if r.Location == nil || len(r.Panels) == 0 || r.Step <= 0 || !validName.MatchString(r.Name) {
				t.Fatalf("incomplete report %+v", r)
			}
		}
	})
}
