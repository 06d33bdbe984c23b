package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// Enrolment is how an agent comes by its identity: fleet-agent's flags of the same names.
type Enrolment struct {
	// Controllers are the controllers' URLs, to join through.
	Controllers []string
	// Cluster is the cluster id the agent runs for (--cluster-id).
	Cluster string
	// Dir holds the identity (--identity-dir); created 0700.
	Dir string
	// CAFile is the group's CA (--ca), needed to join.
	CAFile string
	// Token or TokenFile is the one-time join token (--join-token, --join-token-file).
	Token, TokenFile string
}

// LoadOrJoin returns the agent's stored identity or, on the first start (or once the stored
// certificate has expired), joins with the join token. Errors name the flag to fix.
func LoadOrJoin(ctx context.Context, log *slog.Logger, e Enrolment) (*Identity, error) {
	controllers, clusterID, dir, caFile, token, tokenFile := e.Controllers, e.Cluster, e.Dir, e.CAFile, e.Token, e.TokenFile
	if token != "" && tokenFile != "" {
		return nil, errors.New("--join-token and --join-token-file: give one, not both")
	}
	tokenFlag := "--join-token"
	if tokenFile != "" {
		tokenFlag = "--join-token-file"
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--join-token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--identity-dir: %w", err)
	}
	ident, err := LoadIdentity(dir)
	var discarded *DiscardedError
	switch {
	case err == nil:
		if ident.Cluster() != clusterID {
			return nil, fmt.Errorf("--cluster-id %q: the identity stored in --identity-dir %s is cluster %q's; give that cluster id, or remove the directory and join with a join token for %q", clusterID, dir, ident.Cluster(), clusterID)
		}
		if !time.Now().Before(ident.NotAfter()) {
			if token == "" {
				return nil, fmt.Errorf("--identity-dir %s: the stored certificate of cluster %q expired at %s; join again with --join-token or --join-token-file (fleetctl token create --cluster %s)", dir, clusterID, ident.NotAfter().Format(time.RFC3339), clusterID)
			}
			log.Warn("the stored certificate has expired; joining again", "expired", ident.NotAfter(), "identity_dir", dir)
			break
		}
		if token != "" {
			log.Info("an identity for this cluster is stored; ignoring "+tokenFlag, "identity_dir", dir, "expires", ident.NotAfter())
		}
		log.Info("loaded the agent identity", "cluster", ident.Cluster(), "epoch", ident.Epoch(), "expires", ident.NotAfter(), "identity_dir", dir)
		return ident, nil
	case errors.As(err, &discarded):
		log.Error("the stored identity was unusable and was moved aside", "err", err)
	case errors.Is(err, ErrNoIdentity):
	default:
		return nil, fmt.Errorf("--identity-dir: %w", err)
	}
	if token == "" {
		return nil, fmt.Errorf("--join-token or --join-token-file is required: no usable agent identity in --identity-dir %s (create a token with fleetctl token create --cluster %s)", dir, clusterID)
	}
	if caFile == "" {
		return nil, errors.New("--ca is required with https:// controllers until the agent has joined")
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	log.Info("joining the fleet with the join token", "cluster", clusterID, "identity_dir", dir)
	ident, err = Join(ctx, dir, controllers, caPEM, token)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tokenFlag, err)
	}
	if ident.Cluster() != clusterID {
		return nil, fmt.Errorf("--cluster-id %q: the join token was for cluster %q (its identity is now stored in --identity-dir %s)", clusterID, ident.Cluster(), dir)
	}
	log.Info("joined", "cluster", ident.Cluster(), "epoch", ident.Epoch(), "expires", ident.NotAfter())
	return ident, nil
}
