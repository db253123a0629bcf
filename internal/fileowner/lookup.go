package fileowner

import (
	"fmt"
	"os/user"
	"strconv"
)

// LookupGroup reads a group id or name.
func LookupGroup(s string) (int, error) {
	return lookupID(s, func(n string) (string, error) {
		g, err := user.LookupGroup(n)
		if err != nil {
			return "", err
		}
		return g.Gid, nil
	})
}

func lookupID(s string, byName func(string) (string, error)) (int, error) {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return n, nil
	}
	id, err := byName(s)
	if err != nil {
		return 0, fmt.Errorf("%w: names are looked up in this machine's user database, by validate too; create it here (groupadd/useradd), validate on the machine the broker runs on, or give the numeric id", err)
	}
	return strconv.Atoi(id)
}

// LookupUser reads a user id or name.
func LookupUser(s string) (int, error) {
	return lookupID(s, func(n string) (string, error) {
		u, err := user.Lookup(n)
		if err != nil {
			return "", err
		}
		return u.Uid, nil
	})
}
