package rate

import (
	"testing"
	"time"
)

func TestCount(t *testing.T) {
	from := time.Unix(100, 0)
	at := func(s float64) time.Time { return from.Add(time.Duration(s * float64(time.Second))) }
	st := Count([]time.Time{at(-1), at(-0.5), at(0), at(0.2), at(0.9), at(1.5), at(3.99), at(4)}, from, at(4))
	if st.Burst != 2 || st.Requests != 5 || st.Peak != 3 || st.Mean != 1.25 {
		t.Fatalf("%+v", st)
	}
}
