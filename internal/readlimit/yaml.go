package readlimit

import (
	"fmt"

	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// YAMLNodes returns an upper bound on the number of nodes a YAML (or JSON)
// parser can build from data, counted without parsing: every node but the
// first needs a separator before it (a line break, ',', '[', '{', a block
// indicator "- ", "? " or ": ", or ':' right after a quoted key), and one
// separator opens at most three nodes (a flow pair in a sequence: a
// mapping, its key and its value).
func YAMLNodes(data []byte) int {
	seps := 0
	for i, c := range data {
		switch c {
		case '\n', ',', '[', '{':
			seps++
		case '-', '?', ':':
			if i+1 == len(data) || data[i+1] == ' ' || data[i+1] == '\t' || data[i+1] == '\n' || data[i+1] == '\r' ||
				(c == ':' && i > 0 && (data[i-1] == '"' || data[i-1] == '\'')) {
				seps++
			}
		}
	}
	return 3*seps + 3
}

// CheckYAML refuses data whose YAML tree could hold more than maxNodes
// nodes, before any tree is built: a small file of many tiny nodes would
// otherwise take hundreds of times its size in memory.
func CheckYAML(data []byte, maxNodes int, what string) error {
	if n := YAMLNodes(data); n > maxNodes {
		return fail.Mark(fail.Format, fmt.Errorf("%s has too many YAML elements (up to %d; the limit is %d); it is not a file secrets-broker writes or reads", what, n, maxNodes))
	}
	return nil
}
