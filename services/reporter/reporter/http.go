package reporter

import (
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func (s *Service) registerHTTP(mux *http.ServeMux) {
	mux.Handle("GET /{$}", http.RedirectHandler("/reports", http.StatusFound))
	mux.HandleFunc("GET /reports", s.serveIndex)
	mux.HandleFunc("GET /reports/{tenant}/{report}/{file}", s.serveFile)
	mux.HandleFunc("GET /api/v1/reports", s.serveList)
	mux.HandleFunc("POST /api/v1/reports/{tenant}/{report}/run", s.serveRun)
}

var indexTemplate = template.Must(template.New("index").Funcs(template.FuncMap{
	// kind names a file of a report by what follows its period: html,
	// json, 1.csv.
	"kind": func(e Entry, file string) string { return strings.TrimPrefix(file, e.Base+".") },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tmaflow reports</title>
<style>body{font-family:sans-serif;margin:24px}table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}</style>
</head><body><h1>Reports{{if .Tenant}} of {{.Tenant}}{{end}}</h1>
<table><tr><th>tenant</th><th>report</th><th>period start</th><th>period end</th><th>files</th></tr>
{{range .Entries}}<tr><td><a href="?tenant={{.Tenant}}">{{.Tenant}}</a></td><td>{{.Title}}</td><td>{{.Start.Format "2006-01-02 15:04Z07:00"}}</td><td>{{.End.Format "2006-01-02 15:04Z07:00"}}</td>
<td>{{$e := .}}{{range .Files}}<a href="/reports/{{$e.Tenant}}/{{$e.Report}}/{{.}}">{{kind $e .}}</a> {{end}}</td></tr>
{{else}}<tr><td colspan="5">no reports yet</td></tr>{{end}}</table></body></html>
`))

func (s *Service) serveIndex(w http.ResponseWriter, r *http.Request) {
	tenant := r.URL.Query().Get("tenant")
	entries, err := s.store.List(tenant)
	if err != nil {
		s.httpError(w, http.StatusBadRequest, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := indexTemplate.Execute(w, map[string]any{"Tenant": tenant, "Entries": entries}); err != nil {
		s.logger.Warn("write report index", "err", err)
	}
}

func (s *Service) serveList(w http.ResponseWriter, r *http.Request) {
	entries, err := s.store.List(r.URL.Query().Get("tenant"))
	if err != nil {
		s.httpError(w, http.StatusBadRequest, err)
		return
	}
	if entries == nil {
		entries = []Entry{}
	}
	s.writeJSON(w, http.StatusOK, entries)
}

func (s *Service) serveFile(w http.ResponseWriter, r *http.Request) {
	tenant, report, file := r.PathValue("tenant"), r.PathValue("report"), r.PathValue("file")
	path := s.store.Path(tenant, report, file)
	if path == "" {
		s.httpError(w, http.StatusBadRequest, errors.New("invalid tenant, report or file name"))
		return
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		s.httpError(w, http.StatusNotFound, errors.New("no such report file"))
		return
	}
	if err != nil {
		s.httpError(w, http.StatusInternalServerError, err)
		return
	}
	defer func() {
		if err := f.Close(); err != nil {
			s.logger.Warn("close report file", "path", path, "err", err)
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		s.httpError(w, http.StatusInternalServerError, err)
		return
	}
	switch filepath.Ext(file) {
	case ".csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+report+"_"+file+`"`)
	case ".json":
		w.Header().Set("Content-Type", "application/json")
	case ".html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	}
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// serveRun runs a report now, for the period of ?at= (RFC 3339; default
// now), and answers its document.
func (s *Service) serveRun(w http.ResponseWriter, r *http.Request) {
	rep, ok := s.report(r.PathValue("tenant"), r.PathValue("report"))
	if !ok {
		s.httpError(w, http.StatusNotFound, errors.New("no such report"))
		return
	}
	at := s.now()
	if v := r.URL.Query().Get("at"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			s.httpError(w, http.StatusBadRequest, errors.New("at: want an RFC 3339 time"))
			return
		}
		at = t
	}
	doc, err := s.Run(r.Context(), rep, at)
	if err != nil {
		s.metrics.runs.WithLabelValues(rep.Tenant, rep.Name, statusFailed).Inc()
		s.logger.Error("report run asked for", "tenant", rep.Tenant, "report", rep.Name, "err", err)
		s.httpError(w, http.StatusBadGateway, err)
		return
	}
	s.writeJSON(w, http.StatusOK, doc)
}

func (s *Service) httpError(w http.ResponseWriter, code int, err error) {
	s.writeJSON(w, code, map[string]string{"status": "error", "error": err.Error()})
}

func (s *Service) writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.logger.Warn("write http response", "err", err)
	}
}
