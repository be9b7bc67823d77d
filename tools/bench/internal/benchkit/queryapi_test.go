package benchkit

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestQueryAPI(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "probe" || p != "secret" {
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "error": "bad credentials"})
			return
		}
		switch r.URL.Path {
		case "/api/v1/series":
			require.Equal(t, `{probe="p"}`, r.URL.Query().Get("match[]"))
			_, _ = w.Write([]byte(`{"status":"success","data":[{"__name__":"a","probe":"p"}]}`))
		case "/api/v1/query_range":
			require.Equal(t, "60", r.URL.Query().Get("step"))
			require.Equal(t, "1000.500", r.URL.Query().Get("start"))
			_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"matrix","result":[
				{"metric":{},"values":[[1060.5,"10"],[1120.5,"2.5"]]}]}}`))
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	api := QueryAPI{URL: srv.URL, User: "probe", Password: "secret"}
	sets, err := api.Series(ctx, `{probe="p"}`)
	require.NoError(t, err)
	require.Equal(t, []map[string]string{{"__name__": "a", "probe": "p"}}, sets)

	res, err := api.QueryRange(ctx, "sum(x)", time.UnixMilli(1000500), time.UnixMilli(1120500), time.Minute)
	require.NoError(t, err)
	require.Len(t, res, 1)
	sum, err := res[0].Sum()
	require.NoError(t, err)
	require.InDelta(t, 12.5, sum, 1e-9)

	api.Password = "wrong"
	_, err = api.Series(ctx, `{probe="p"}`)
	require.ErrorContains(t, err, "series: 401 Unauthorized: bad credentials")
}
