//go:build unix

package fileowner_test

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/internal/fileowner"
)

func TestOfNamesTheFilesOwner(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	uid, gid, ok := fileowner.Of(info)
	if !ok || uid != os.Getuid() || gid != os.Getegid() {
		t.Fatalf("Of = %d, %d, %v; want %d, %d, true", uid, gid, ok, os.Getuid(), os.Getegid())
	}
}

func TestLookupTakesIDsAndNames(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := strconv.Atoi(me.Uid)
	for _, s := range []string{me.Uid, me.Username} {
		if id, err := fileowner.LookupUser(s); err != nil || id != want {
			t.Errorf("LookupUser(%q) = %d, %v; want %d", s, id, err, want)
		}
	}
	g, err := user.LookupGroupId(me.Gid)
	if err != nil {
		t.Fatal(err)
	}
	wantG, _ := strconv.Atoi(me.Gid)
	for _, s := range []string{me.Gid, g.Name} {
		if id, err := fileowner.LookupGroup(s); err != nil || id != wantG {
			t.Errorf("LookupGroup(%q) = %d, %v; want %d", s, id, err, wantG)
		}
	}
	_, err = fileowner.LookupGroup("no-such-group-secrets-broker")
	if err == nil || !strings.Contains(err.Error(), "give the numeric id") {
		t.Errorf("an unknown group: %v; want an error saying what to do", err)
	}
}
