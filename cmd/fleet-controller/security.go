package main

import (
	"fmt"

	"github.com/ebbflow/ebbflow/internal/pki"
)

// pkiInit creates (or keeps) a CA and an admin token in dir and says where they are.
func pkiInit(dir string) error {
	_, created, err := pki.LoadOrCreateCA(dir)
	if err != nil {
		return fmt.Errorf("--pki-init: %w", err)
	}
	if _, _, err := pki.LoadOrCreateAdminToken(dir); err != nil {
		return fmt.Errorf("--pki-init: %w", err)
	}
	what := "created"
	if !created {
		what = "kept the existing"
	}
	fmt.Printf("%s CA and admin token in %s: %s, %s, %s (mode 0600)\n", what, dir, pki.CACertFile, pki.CAKeyFile, pki.AdminTokenFile)
	return nil
}
