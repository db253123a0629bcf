// Package promtext owns the daemon's counters and gauges and their
// exposition in Prometheus' text format (version 0.0.4).
//
// It replaces the Prometheus client library, whose package initialisation
// (and the Protocol Buffers runtime it links) cost the broker 2.7 MiB of
// resident memory in every run, including `run --once`, which serves no
// metrics. The broker needs only counters and gauges with at most one
// label; the text format for those is a few lines (see
// https://prometheus.io/docs/instrumenting/exposition_formats/), and the
// tests check the output with Prometheus' own parser.
package promtext

import (
	"bufio"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Registry holds metric families and writes them in the order they were
// made. The zero Registry is empty and ready to use.
type Registry struct {
	mu       sync.Mutex
	families []*family
}

// family is one metric name: either a single value (label == "") or one
// value per label value.
type family struct {
	name, help, kind, label string

	mu     sync.Mutex
	single *value
	byVal  map[string]*value
}

// value is a float64 held as its bits, so that it can be read and written
// without a lock.
type value struct{ bits atomic.Uint64 }

func (v *value) load() float64 { return math.Float64frombits(v.bits.Load()) }

func (v *value) add(delta float64) {
	for {
		old := v.bits.Load()
		if v.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+delta)) {
			return
		}
	}
}

func (r *Registry) add(name, help, kind, label string) *family {
	f := &family{name: name, help: help, kind: kind, label: label}
	if label == "" {
		f.single = &value{}
	} else {
		f.byVal = map[string]*value{}
	}
	r.mu.Lock()
	r.families = append(r.families, f)
	r.mu.Unlock()
	return f
}

// with returns the value for a label value, made on first use.
func (f *family) with(labelValue string) *value {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.byVal[labelValue]
	if !ok {
		v = &value{}
		f.byVal[labelValue] = v
	}
	return v
}

// Counter is a value that only goes up.
type Counter struct{ v *value }

// Inc adds one.
func (c Counter) Inc() { c.v.add(1) }

// Gauge is a value that is set.
type Gauge struct{ v *value }

// Set sets the value.
func (g Gauge) Set(x float64) { g.v.bits.Store(math.Float64bits(x)) }

// SetToCurrentTime sets the value to the current Unix time in seconds.
func (g Gauge) SetToCurrentTime() { g.Set(float64(time.Now().UnixNano()) / 1e9) }

// CounterVec is a counter per value of one label.
type CounterVec struct{ f *family }

// With returns the counter for a label value.
func (c CounterVec) With(labelValue string) Counter { return Counter{c.f.with(labelValue)} }

// GaugeVec is a gauge per value of one label.
type GaugeVec struct{ f *family }

// With returns the gauge for a label value.
func (g GaugeVec) With(labelValue string) Gauge { return Gauge{g.f.with(labelValue)} }

// Delete removes the series of a label value, if there is one.
func (g GaugeVec) Delete(labelValue string) {
	g.f.mu.Lock()
	delete(g.f.byVal, labelValue)
	g.f.mu.Unlock()
}

// Counter adds a counter. Names and help are the caller's constants.
func (r *Registry) Counter(name, help string) Counter {
	return Counter{r.add(name, help, "counter", "").single}
}

// CounterVec adds a counter per value of label.
func (r *Registry) CounterVec(name, help, label string) CounterVec {
	return CounterVec{r.add(name, help, "counter", label)}
}

// Gauge adds a gauge.
func (r *Registry) Gauge(name, help string) Gauge {
	return Gauge{r.add(name, help, "gauge", "").single}
}

// GaugeVec adds a gauge per value of label.
func (r *Registry) GaugeVec(name, help, label string) GaugeVec {
	return GaugeVec{r.add(name, help, "gauge", label)}
}

// WriteText writes every family in the text format: HELP and TYPE, then
// one line per value, label values sorted. A labelled family with no
// value yet is left out, as the Prometheus client does.
func (r *Registry) WriteText(w io.Writer) error {
	r.mu.Lock()
	families := slices.Clone(r.families)
	r.mu.Unlock()
	bw := bufio.NewWriter(w)
	for _, f := range families {
		type sample struct {
			labelValue string
			v          float64
		}
		var samples []sample
		f.mu.Lock()
		if f.single != nil {
			samples = append(samples, sample{"", f.single.load()})
		}
		for lv, v := range f.byVal {
			samples = append(samples, sample{lv, v.load()})
		}
		f.mu.Unlock()
		if len(samples) == 0 {
			continue
		}
		slices.SortFunc(samples, func(a, b sample) int { return strings.Compare(a.labelValue, b.labelValue) })
		bw.WriteString("# HELP " + f.name + " " + helpEscaper.Replace(f.help) + "\n")
		bw.WriteString("# TYPE " + f.name + " " + f.kind + "\n")
		for _, s := range samples {
			bw.WriteString(f.name)
			if f.label != "" {
				bw.WriteString("{" + f.label + `="` + labelEscaper.Replace(s.labelValue) + `"}`)
			}
			bw.WriteString(" " + formatFloat(s.v) + "\n")
		}
	}
	return bw.Flush()
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func formatFloat(x float64) string {
	switch {
	case math.IsInf(x, 1):
		return "+Inf"
	case math.IsInf(x, -1):
		return "-Inf"
	case math.IsNaN(x):
		return "NaN"
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

// Handler serves the registry at GET (and HEAD).
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.WriteText(w)
	})
}
