package reporter

import (
	"context"
	"encoding/xml"
	"errors"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/peertest"
)

// svgElement finds the charts of a report page.
var svgElement = regexp.MustCompile(`(?s)<svg .*?</svg>`)

// TestChartsAreValidSVG parses every chart of a generated report as XML.
func TestChartsAreValidSVG(t *testing.T) {
	e := newEnv(t, nil)
	doc, err := e.svc.Run(context.Background(), e.daily(t), day.Add(24*time.Hour+5*time.Minute))
	require.NoError(t, err)
	page, err := os.ReadFile(filepath.Join(e.cfg.DataDir, "reports", "demo", "daily", Base(doc)+".html"))
	require.NoError(t, err)
	svgs := svgElement.FindAll(page, -1)
	require.Len(t, svgs, 1)
	paths := map[string]int{}
	d := xml.NewDecoder(strings.NewReader(string(svgs[0])))
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "path" {
			for _, a := range se.Attr {
				if a.Name.Local == "class" {
					paths[a.Value]++
				}
			}
		}
	}
	require.Equal(t, map[string]int{"series": 1, "forecast": 1, "band": 1}, paths)
}

// TestReportRendersInChromium opens a generated report from disk in
// headless Chromium and checks the screenshot: not blank, and the first
// series' colour and its forecast band drawn.
func TestReportRendersInChromium(t *testing.T) {
	bin := peertest.Binary(t, "chromium")
	e := newEnv(t, nil)
	doc, err := e.svc.Run(context.Background(), e.daily(t), day.Add(24*time.Hour+5*time.Minute))
	require.NoError(t, err)
	page := filepath.Join(e.cfg.DataDir, "reports", "demo", "daily", Base(doc)+".html")
	shot := filepath.Join(t.TempDir(), "report.png")
	// REPORTER_SCREENSHOT_DIR keeps the page and its screenshot, for the
	// README.
	if d := os.Getenv("REPORTER_SCREENSHOT_DIR"); d != "" {
		shot = filepath.Join(d, "report.png")
		html, err := os.ReadFile(page)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(d, "report.html"), html, 0o644))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--user-data-dir="+t.TempDir(), "--screenshot="+shot, "--window-size=1100,900", "file://"+page)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "chromium: %s", out)
	f, err := os.Open(shot)
	require.NoError(t, err)
	defer func() { require.NoError(t, f.Close()) }()
	img, err := png.Decode(f)
	require.NoError(t, err)

	variance, series, band := pixelStats(img)
	require.Greater(t, variance, 100.0, "the screenshot is blank")
	require.Greater(t, series, 300, "the series line (#1f77b4) is not drawn")
	require.Greater(t, band, 2000, "the forecast band is not drawn")
}

// pixelStats returns the variance of the luminance, the pixels of the
// first series' colour and those of its band (the colour at 18% over
// white).
func pixelStats(img image.Image) (variance float64, series, band int) {
	var sum, sq, n float64
	near := func(r, g, b, wr, wg, wb int) bool {
		return abs(r-wr) < 24 && abs(g-wg) < 24 && abs(b-wb) < 24
	}
	bandCol := func(c int) int { return int(0.18*float64(c) + 0.82*255) }
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r32, g32, b32, _ := img.At(x, y).RGBA()
			r, g, b := int(r32>>8), int(g32>>8), int(b32>>8)
			l := 0.299*float64(r) + 0.587*float64(g) + 0.114*float64(b)
			sum, sq, n = sum+l, sq+l*l, n+1
			if near(r, g, b, 0x1f, 0x77, 0xb4) {
				series++
			}
			if near(r, g, b, bandCol(0x1f), bandCol(0x77), bandCol(0xb4)) && !near(r, g, b, 255, 255, 255) {
				band++
			}
		}
	}
	m := sum / n
	return sq/n - m*m, series, band
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
