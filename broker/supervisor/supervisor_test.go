package supervisor

import (
	"bufio"
	"context"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lines reads what the child prints, one line per event, so the test
// waits on the child, never on a clock.
type lines struct {
	t  *testing.T
	ch chan string
}

func newLines(t *testing.T) (*lines, io.Writer) {
	r, w := io.Pipe()
	l := &lines{t: t, ch: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.ch <- sc.Text()
		}
		close(l.ch)
	}()
	t.Cleanup(func() { w.Close() })
	return l, w
}

func (l *lines) next() string {
	l.t.Helper()
	select {
	case s := <-l.ch:
		return s
	case <-time.After(time.Minute):
		l.t.Fatal("the child printed nothing for a minute")
		return ""
	}
}

// A child that sets its traps (USR1, not HUP: a shell started with SIGHUP
// ignored, as under nohup, cannot trap it), prints its value (so the test signals it
// only once the traps are in place), then waits for signals, reporting each.
const script = `trap 'echo usr1' USR1; trap 'echo term; exit 0' TERM; echo "start $VALUE"; while :; do sleep 0.05; done`

func TestChangeRestartsWithTheNewEnvironmentOnce(t *testing.T) {
	out, w := newLines(t)
	changes := make(chan Change)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Status)
	go func() {
		st, err := Run(ctx, Config{Command: []string{"/bin/sh", "-c", script}, Stdout: w, Stderr: w}, []string{"VALUE=one"}, changes)
		if err != nil {
			t.Error(err)
		}
		done <- st
	}()
	if got := out.next(); got != "start one" {
		t.Fatalf("first start printed %q", got)
	}
	changes <- Change{Env: []string{"VALUE=two"}}
	if got := out.next(); got != "term" {
		t.Fatalf("the old child should be stopped with SIGTERM first; printed %q", got)
	}
	if got := out.next(); got != "start two" {
		t.Fatalf("the restarted child printed %q, want the new value", got)
	}
	cancel()
	if got := out.next(); got != "term" {
		t.Fatalf("stopping the broker should reach the child as SIGTERM; printed %q", got)
	}
	if st := <-done; st.Code != 0 {
		t.Fatalf("status %d, want the child's 0", st.Code)
	}
	select {
	case s, ok := <-out.ch:
		if ok {
			t.Fatalf("unexpected output after stop: %q", s)
		}
	default:
	}
}

func TestReloadSignalInsteadOfRestartForFileChanges(t *testing.T) {
	out, w := newLines(t)
	changes := make(chan Change)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan Status, 1)
	go func() {
		st, _ := Run(ctx, Config{Command: []string{"/bin/sh", "-c", script}, Stdout: w, ReloadSignal: syscall.SIGUSR1}, []string{"VALUE=one"}, changes)
		done <- st
	}()
	out.next()
	changes <- Change{} // a file changed
	if got := out.next(); got != "usr1" {
		t.Fatalf("want the reload signal, got %q", got)
	}
	changes <- Change{Env: []string{"VALUE=two"}} // the environment changed: only a restart can apply it
	if got := out.next(); got != "term" {
		t.Fatalf("got %q", got)
	}
	if got := out.next(); got != "start two" {
		t.Fatalf("got %q", got)
	}
	cancel()
	<-done
}

func TestAChildThatIgnoresTheStopSignalIsKilledAfterTheTimeout(t *testing.T) {
	out, w := newLines(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Status, 1)
	go func() {
		st, _ := Run(ctx, Config{Command: []string{"/bin/sh", "-c", `trap 'echo ignored' TERM; echo up; while :; do sleep 0.05; done`}, Stdout: w, KillTimeout: 200 * time.Millisecond}, nil, nil)
		done <- st
	}()
	out.next()
	cancel()
	if got := out.next(); got != "ignored" {
		t.Fatalf("got %q", got)
	}
	select {
	case st := <-done:
		if st.Code != 128+int(syscall.SIGKILL) {
			t.Fatalf("status %d, want 137 (killed)", st.Code)
		}
	case <-time.After(time.Minute):
		t.Fatal("the child was not killed")
	}
}

func TestExitEndsOrRestarts(t *testing.T) {
	st, err := Run(context.Background(), Config{Command: []string{"/bin/sh", "-c", "exit 7"}}, nil, nil)
	if err != nil || st.Code != 7 {
		t.Fatalf("status %d, err %v; want the child's 7", st.Code, err)
	}
	out, w := newLines(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Status, 1)
	go func() {
		st, _ := Run(ctx, Config{Command: []string{"/bin/sh", "-c", `trap 'exit 3' TERM; echo run; exit 3`}, Stdout: w, RestartOnExit: true}, nil, nil)
		done <- st
	}()
	for range 2 {
		if got := out.next(); got != "run" {
			t.Fatalf("got %q", got)
		}
	}
	cancel()
	if st := <-done; st.Code != 3 {
		t.Fatalf("status %d", st.Code)
	}
	_, err = Run(context.Background(), Config{Command: []string{"/nonexistent/app"}}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "cannot start /nonexistent/app") {
		t.Fatalf("err %v", err)
	}
}
