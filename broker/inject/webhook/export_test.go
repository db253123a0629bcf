package webhook

import "net/http"

// Bounded is bounded, for tests.
func Bounded(next http.Handler, n int) http.Handler { return bounded(next, n) }
