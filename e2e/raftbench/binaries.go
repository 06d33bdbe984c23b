package raftbench

import (
	"context"
	"io"
	"os"
	"path/filepath"

	"github.com/ebbflow/ebbflow/e2e/kubebox"
)

// EtcdBinary is the etcd (kubebox.EtcdVersion) that kubebox builds for the e2e tests, built
// first when its cache does not hold it (about ten minutes; progress goes to log).
func EtcdBinary(ctx context.Context, log io.Writer) (string, error) {
	b, err := kubebox.EnsureBinaries(ctx, log)
	if err != nil {
		return "", err
	}
	return b.Etcd, nil
}

// KubeboxBuilt says whether kubebox's cache holds a finished build with etcd, without building
// one: a test that needs etcd skips when it does not, rather than spend ten minutes building.
func KubeboxBuilt() bool {
	root := ""
	if d := os.Getenv("EBBFLOW_CACHE"); d != "" {
		root = filepath.Join(d, "kubebox")
	} else if d, err := os.UserCacheDir(); err == nil {
		root = filepath.Join(d, "ebbflow", "kubebox")
	} else {
		return false
	}
	dirs, err := filepath.Glob(filepath.Join(root, "*_etcd-"+kubebox.EtcdVersion+"_*"))
	if err != nil {
		return false
	}
	for _, d := range dirs {
		_, errManifest := os.Stat(filepath.Join(d, "kubebox.json"))
		st, errEtcd := os.Stat(filepath.Join(d, "etcd"))
		if errManifest == nil && errEtcd == nil && st.Mode()&0o111 != 0 {
			return true
		}
	}
	return false
}
