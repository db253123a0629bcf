//go:build floor_noaws

package main

import (
	"context"
	"errors"
)

func decryptWithKMS(context.Context, []byte) error {
	return errors.New("built without AWS KMS (floor_noaws)")
}
