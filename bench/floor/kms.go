//go:build !floor_noaws

package main

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// decryptWithKMS is what any AWS KMS wrapper must link: the standard
// credential chain and a KMS client.
func decryptWithKMS(ctx context.Context, blob []byte) error {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"))
	if err != nil {
		return err
	}
	_, err = kms.NewFromConfig(cfg).Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob})
	return err
}
