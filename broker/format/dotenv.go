package format

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// ParseDotenv reads NAME=VALUE lines as docker compose and python-dotenv
// write them, in order: blank lines and # comments skipped, an optional
// "export ", values unquoted (a " #" starts a comment), 'single-quoted'
// (literal) or "double-quoted" (\\ \" \$ \` \n \r \t escapes; other
// backslashes kept), quoted values spanning lines. No variable is
// expanded: a value is the bytes written. Errors name the file and line,
// never a value. What Marshal writes as dotenv reads back the same.
func ParseDotenv(data []byte, path string) ([]envelope.Plain, error) {
	bad := func(line int, format string, args ...any) error {
		return fail.Mark(fail.Usage, fmt.Errorf("%s, line %d: %s", path, line, fmt.Sprintf(format, args...)))
	}
	text := string(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
	var out []envelope.Plain
	seen := map[string]bool{}
	line := 0
	for len(text) > 0 {
		line++
		start := line
		cur, rest, _ := strings.Cut(text, "\n")
		text = rest
		if t := strings.TrimSpace(cur); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		// The right end stays as it is: a quoted value keeps its bytes
		// (a carriage return included).
		trimmed := strings.TrimPrefix(strings.TrimLeft(cur, " \t"), "export ")
		name, value, ok := strings.Cut(trimmed, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, bad(start, "expected NAME=VALUE")
		}
		if seen[name] {
			return nil, bad(start, "secret %q appears twice", name)
		}
		seen[name] = true
		if err := (envelope.Binding{Name: name}).Validate(); err != nil {
			return nil, bad(start, "%v", err)
		}
		value = strings.TrimLeft(value, " \t")
		var v strings.Builder
		switch {
		case strings.HasPrefix(value, `"`) || strings.HasPrefix(value, `'`):
			quote := value[0]
			body := value[1:]
			for {
				end := -1
				for i := 0; i < len(body); i++ {
					if quote == '"' && body[i] == '\\' && i+1 < len(body) {
						switch body[i+1] {
						case '\\', '"', '$', '`':
							v.WriteByte(body[i+1])
						case 'n':
							v.WriteByte('\n')
						case 'r':
							v.WriteByte('\r')
						case 't':
							v.WriteByte('\t')
						default:
							v.WriteByte('\\')
							v.WriteByte(body[i+1])
						}
						i++
						continue
					}
					if body[i] == quote {
						end = i
						break
					}
					v.WriteByte(body[i])
				}
				if end >= 0 {
					after := strings.TrimSpace(body[end+1:])
					if after != "" && !strings.HasPrefix(after, "#") {
						return nil, bad(line, "secret %q: text after the closing quote", name)
					}
					break
				}
				// The quoted value goes on: the line's end is part of it.
				if text == "" {
					return nil, bad(start, "secret %q: the quote is never closed", name)
				}
				next, rest, _ := strings.Cut(text, "\n")
				v.WriteByte('\n')
				body, text = next, rest
				line++
			}
		default:
			if i := strings.Index(value, " #"); i >= 0 {
				value = value[:i]
			}
			v.WriteString(strings.TrimRight(value, " \t\r"))
		}
		out = append(out, envelope.Plain{Name: name, Value: []byte(v.String())})
	}
	return out, nil
}
