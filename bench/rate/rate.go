// Package rate counts requests per second in a window, for the fleet
// benchmarks (bench/fleet, bench/tokenfleet).
package rate

import "time"

// Stats are the requests before the window (the start burst) and, within
// it, their count, their mean per second and the busiest second.
type Stats struct {
	Burst, Requests, Peak int
	Mean                  float64
}

// Count counts times against the window [from, to).
func Count(times []time.Time, from, to time.Time) Stats {
	var st Stats
	perSecond := map[int64]int{}
	for _, t := range times {
		switch {
		case t.Before(from):
			st.Burst++
		case t.Before(to):
			perSecond[t.Unix()]++
			st.Requests++
		}
	}
	for _, n := range perSecond {
		st.Peak = max(st.Peak, n)
	}
	if w := to.Sub(from).Seconds(); w > 0 {
		st.Mean = float64(st.Requests) / w
	}
	return st
}
