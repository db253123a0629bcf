// Package pgtest runs a real PostgreSQL server from Debian's packages for
// tests: a fresh cluster in a temporary directory, listening on 127.0.0.1 at
// a free port, stopped when the test ends. As root it runs the server as the
// "postgres" user (PostgreSQL refuses to run as root). Tests fail, never
// skip, when it cannot start.
package pgtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is a running PostgreSQL cluster.
type Server struct {
	Host     string
	Port     int
	User     string // superuser
	Password string
	bindir   string
	dir      string
	asUser   string
}

func bindir() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", fmt.Errorf("PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql; scripts/test.sh does)")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

func (s *Server) run(name string, args ...string) (string, error) {
	path := filepath.Join(s.bindir, name)
	var cmd *exec.Cmd
	if s.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", s.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Start creates and starts a cluster; it is removed at cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := Launch()
	if err != nil {
		t.Fatalf("a real PostgreSQL server is required and could not start: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Launch starts a throwaway PostgreSQL cluster on a free loopback port;
// Stop removes it. Tests use Start.
func Launch() (*Server, error) {
	bd, err := bindir()
	if err != nil {
		return nil, err
	}
	pw := make([]byte, 12)
	rand.Read(pw)
	s := &Server{Host: "127.0.0.1", User: "postgres", Password: hex.EncodeToString(pw), bindir: bd}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s.dir = dir
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		s.asUser = "postgres"
	}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if s.asUser != "" {
		u, _ := user.Lookup("postgres")
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chown(pwfile, uid, gid)
	}
	data := filepath.Join(dir, "data")
	if out, err := s.run("initdb", "-D", data, "-U", s.User, "--pwfile="+pwfile, "-A", "scram-sha-256", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	for attempt := 0; attempt < 3; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		s.Port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off", s.Port, dir)
		out, err := s.run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "-t", "60", "start")
		if err == nil {
			return s, nil
		}
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			return nil, fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return s, nil
}

// Stop stops the server and removes the cluster.
func (s *Server) Stop() {
	s.run("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "stop")
	os.RemoveAll(s.dir)
}

// Psql runs a query with psql as user/password and returns its output.
func (s *Server) Psql(user, password, db, query string) (string, error) {
	cmd := exec.Command(filepath.Join(s.bindir, "psql"), "-h", s.Host, "-p", strconv.Itoa(s.Port), "-U", user, "-d", db, "-tAX", "-v", "ON_ERROR_STOP=1", "-c", query)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=5")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}
