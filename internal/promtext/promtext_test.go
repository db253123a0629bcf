package promtext

import (
	"bytes"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// What WriteText writes is read back by Prometheus' own text parser with
// every family, type, help text, label and value intact, including label
// values and help that need escaping.
func TestWriteTextParsesWithPrometheusParser(t *testing.T) {
	var r Registry
	passes := r.CounterVec("test_passes_total", "Passes, by result.", "result")
	writes := r.Counter("test_writes_total", `Files written ("changed" ones) \ with a backslash`+"\nand a newline.")
	last := r.Gauge("test_last_success_timestamp_seconds", "When.")
	expiry := r.GaugeVec("test_expiry_timestamp_seconds", "Expiry, by path.", "path")
	r.CounterVec("test_unused_total", "Never incremented.", "source")

	passes.With("ok").Inc()
	passes.With("ok").Inc()
	passes.With("error").Inc()
	writes.Inc()
	last.SetToCurrentTime()
	expiry.With(`secret/data/a"b\c` + "\nd").Set(1.7e9)
	expiry.With("database/creds/app").Set(0)

	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	t.Logf("exposition:\n%s", buf.String())
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("Prometheus' parser refuses the exposition: %v", err)
	}
	if _, ok := families["test_unused_total"]; ok {
		t.Error("a labelled family with no value is exposed")
	}
	if len(families) != 4 {
		t.Fatalf("%d families parsed, want 4", len(families))
	}
	wr := families["test_writes_total"]
	if wr.GetType().String() != "COUNTER" || wr.GetHelp() != `Files written ("changed" ones) \ with a backslash`+"\nand a newline." || wr.Metric[0].GetCounter().GetValue() != 1 {
		t.Errorf("test_writes_total = %v", wr)
	}
	got := map[string]float64{}
	for _, m := range families["test_passes_total"].Metric {
		got[m.Label[0].GetName()+"="+m.Label[0].GetValue()] = m.GetCounter().GetValue()
	}
	if len(got) != 2 || got["result=ok"] != 2 || got["result=error"] != 1 {
		t.Errorf("test_passes_total = %v", got)
	}
	ex := families["test_expiry_timestamp_seconds"]
	if ex.GetType().String() != "GAUGE" || len(ex.Metric) != 2 {
		t.Fatalf("test_expiry_timestamp_seconds = %v", ex)
	}
	for _, m := range ex.Metric {
		want := map[string]float64{`secret/data/a"b\c` + "\nd": 1.7e9, "database/creds/app": 0}[m.Label[0].GetValue()]
		if m.Label[0].GetName() != "path" || m.GetGauge().GetValue() != want {
			t.Errorf("expiry sample %v, want value %v", m, want)
		}
	}
	ts := families["test_last_success_timestamp_seconds"].Metric[0].GetGauge().GetValue()
	if d := time.Since(time.Unix(0, int64(ts*1e9))); d < 0 || d > time.Minute {
		t.Errorf("last success %v is not now", ts)
	}
}

// Counters from many goroutines lose no increment (run with -race).
func TestCountersAreSafeForConcurrentUse(t *testing.T) {
	var r Registry
	c := r.CounterVec("test_total", "T.", "k")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				c.With("a").Inc()
			}
		})
	}
	wg.Go(func() { r.WriteText(io.Discard) })
	wg.Wait()
	var buf bytes.Buffer
	r.WriteText(&buf)
	if !strings.Contains(buf.String(), `test_total{k="a"} 8000`+"\n") {
		t.Fatalf("after 8000 increments:\n%s", buf.String())
	}
}

func TestFormatFloat(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 4: "4", 1.5: "1.5", 1.7e9: "1.7e+09", math.Inf(1): "+Inf", math.Inf(-1): "-Inf", math.NaN(): "NaN"} {
		if got := formatFloat(in); got != want {
			t.Errorf("formatFloat(%v) = %q, want %q", in, got, want)
		}
	}
}

// The handler serves the text format to GET and refuses other methods.
func TestHandler(t *testing.T) {
	var r Registry
	r.Counter("test_total", "T.").Inc()
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" || !strings.Contains(string(body), "test_total 1\n") {
		t.Fatalf("GET: %s %q\n%s", resp.Status, ct, body)
	}
	resp, err = http.Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %s", resp.Status)
	}
}
