package kubebox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Versions of the parts kubebox builds. They are also pinned in the go.mod files under build/.
const (
	KubernetesVersion = "v1.34.3"
	EtcdVersion       = "v3.6.5"
	KwokVersion       = "v0.7.0"
)

// Binaries are the paths of the built executables.
type Binaries struct {
	// Dir is the cache directory that holds them.
	Dir                   string
	Etcd                  string
	KubeAPIServer         string
	KubeControllerManager string
	KubeScheduler         string
	Kwok                  string
}

// binaryNames are the executables a complete cache directory holds.
var binaryNames = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// manifestName marks a complete cache directory; it is written last.
const manifestName = "kubebox.json"

// manifest is what the cache directory records about its build.
type manifest struct {
	Key       string    `json:"key"`
	Versions  []string  `json:"versions"`
	GoVersion string    `json:"goVersion"`
	BuiltAt   time.Time `json:"builtAt"`
	BuildTime string    `json:"buildTime"`
}

// EnsureBinaries returns the kubebox binaries, building them first when the cache does not hold
// them yet. The cache directory is keyed by the versions, a hash of the build modules and the
// platform:
//
//	$EBBFLOW_CACHE/kubebox/<key>             when EBBFLOW_CACHE is set,
//	$XDG_CACHE_HOME/ebbflow/kubebox/<key>    otherwise (default ~/.cache/ebbflow/kubebox/<key>).
//
// A lock file beside the directory serialises builders: a second process (another test package)
// waits for the first one's build and then uses it. Build output goes to log (nil discards it).
func EnsureBinaries(ctx context.Context, log io.Writer) (Binaries, error) {
	if log == nil {
		log = io.Discard
	}
	src, err := buildSourceDir()
	if err != nil {
		return Binaries{}, err
	}
	key, err := cacheKey(src)
	if err != nil {
		return Binaries{}, err
	}
	root, err := cacheRoot()
	if err != nil {
		return Binaries{}, err
	}
	dir := filepath.Join(root, key)
	if b, ok := complete(dir); ok {
		return b, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return Binaries{}, err
	}
	unlock, err := lockFile(ctx, filepath.Join(root, key+".lock"), log)
	if err != nil {
		return Binaries{}, err
	}
	defer unlock()
	if b, ok := complete(dir); ok { // built by another process while this one waited
		return b, nil
	}
	fmt.Fprintf(log, "kubebox: building kubernetes %s, etcd %s and kwok %s into %s (about 10 minutes the first time)\n",
		KubernetesVersion, EtcdVersion, KwokVersion, dir)
	start := time.Now()
	tmp, err := os.MkdirTemp(root, key+".tmp-")
	if err != nil {
		return Binaries{}, err
	}
	defer os.RemoveAll(tmp)
	if err := build(ctx, src, tmp, log); err != nil {
		return Binaries{}, err
	}
	m := manifest{
		Key:       key,
		Versions:  []string{"kubernetes " + KubernetesVersion, "etcd " + EtcdVersion, "kwok " + KwokVersion},
		GoVersion: runtime.Version(),
		BuiltAt:   time.Now().UTC(),
		BuildTime: time.Since(start).Round(time.Second).String(),
	}
	mb, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, manifestName), mb, 0o644); err != nil {
		return Binaries{}, err
	}
	_ = os.RemoveAll(dir) // an incomplete leftover
	if err := os.Rename(tmp, dir); err != nil {
		return Binaries{}, err
	}
	fmt.Fprintf(log, "kubebox: built in %s\n", m.BuildTime)
	b, ok := complete(dir)
	if !ok {
		return Binaries{}, fmt.Errorf("kubebox: %s is incomplete after the build", dir)
	}
	return b, nil
}

// complete returns the binaries of dir when its build finished.
func complete(dir string) (Binaries, bool) {
	if _, err := os.Stat(filepath.Join(dir, manifestName)); err != nil {
		return Binaries{}, false
	}
	for _, n := range binaryNames {
		if st, err := os.Stat(filepath.Join(dir, n)); err != nil || st.Mode()&0o111 == 0 {
			return Binaries{}, false
		}
	}
	return Binaries{
		Dir:                   dir,
		Etcd:                  filepath.Join(dir, "etcd"),
		KubeAPIServer:         filepath.Join(dir, "kube-apiserver"),
		KubeControllerManager: filepath.Join(dir, "kube-controller-manager"),
		KubeScheduler:         filepath.Join(dir, "kube-scheduler"),
		Kwok:                  filepath.Join(dir, "kwok"),
	}, true
}

// cacheRoot is the directory that holds one subdirectory per build key.
func cacheRoot() (string, error) {
	if d := os.Getenv("EBBFLOW_CACHE"); d != "" {
		return filepath.Join(d, "kubebox"), nil
	}
	d, err := os.UserCacheDir() // $XDG_CACHE_HOME, else ~/.cache
	if err != nil {
		return "", fmt.Errorf("kubebox: no cache directory (set EBBFLOW_CACHE): %w", err)
	}
	return filepath.Join(d, "ebbflow", "kubebox"), nil
}

// cacheKey names a build: the versions, the platform and a hash of the build modules' files.
func cacheKey(src string) (string, error) {
	h := sha256.New()
	var files []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "go.mod") || strings.HasSuffix(p, "go.sum")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("kubebox: reading %s: %w", src, err)
	}
	slices.Sort(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(src, f)
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "%s\x00%s/%s\x00", ldflags(), runtime.GOOS, runtime.GOARCH)
	return fmt.Sprintf("k8s-%s_etcd-%s_kwok-%s_%s-%s_%s", KubernetesVersion, EtcdVersion, KwokVersion,
		runtime.GOOS, runtime.GOARCH, hex.EncodeToString(h.Sum(nil))[:12]), nil
}

// buildSourceDir finds the build modules: $EBBFLOW_KUBEBOX_SRC, else build/ beside this file's
// source, else e2e/kubebox/build in the working directory or one of its parents.
func buildSourceDir() (string, error) {
	if d := os.Getenv("EBBFLOW_KUBEBOX_SRC"); d != "" {
		return d, nil
	}
	var tried []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		d := filepath.Join(filepath.Dir(file), "build")
		if isBuildDir(d) {
			return d, nil
		}
		tried = append(tried, d)
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			c := filepath.Join(d, "e2e", "kubebox", "build")
			if isBuildDir(c) {
				return c, nil
			}
			tried = append(tried, c)
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", fmt.Errorf("kubebox: build modules not found (set EBBFLOW_KUBEBOX_SRC); tried %s", strings.Join(tried, ", "))
}

func isBuildDir(d string) bool {
	_, err := os.Stat(filepath.Join(d, "kubernetes", "go.mod"))
	return err == nil
}

// ldflags stamp the Kubernetes binaries with their real version (the module proxy's source has
// the placeholder v0.0.0-master), so clients and Helm see v1.34.3.
func ldflags() string {
	minor := strings.Split(strings.TrimPrefix(KubernetesVersion, "v"), ".")
	var parts []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		parts = append(parts,
			"-X "+pkg+".gitVersion="+KubernetesVersion,
			"-X "+pkg+".gitMajor="+minor[0],
			"-X "+pkg+".gitMinor="+minor[1],
			"-X "+pkg+".gitTreeState=clean",
		)
	}
	return "-s -w " + strings.Join(parts, " ")
}

// build compiles every binary into out.
func build(ctx context.Context, src, out string, log io.Writer) error {
	// The Go that built this test builds the binaries; its GOROOT is right on the machine that
	// runs the test (and "go" on the PATH is the fallback).
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go") //nolint:staticcheck // see above
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	steps := []struct {
		dir  string
		args []string
	}{
		{"etcd", []string{"build", "-trimpath", "-ldflags=-s -w", "-o", out + "/", "."}},
		{"kwok", []string{"build", "-trimpath", "-ldflags=-s -w", "-o", out + "/", "sigs.k8s.io/kwok/cmd/kwok"}},
		{"kubernetes", []string{"build", "-trimpath", "-ldflags=" + ldflags(), "-o", out + "/",
			"./kube-apiserver", "./kube-controller-manager", "./kube-scheduler"}},
	}
	for _, s := range steps {
		start := time.Now()
		fmt.Fprintf(log, "kubebox: go %s (in build/%s)\n", strings.Join(s.args, " "), s.dir)
		cmd := exec.CommandContext(ctx, goBin, s.args...)
		cmd.Dir = filepath.Join(src, s.dir)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("kubebox: building %s: %w", s.dir, err)
		}
		fmt.Fprintf(log, "kubebox: build/%s done in %s\n", s.dir, time.Since(start).Round(time.Second))
	}
	return nil
}

// lockFile takes an exclusive flock on path, waiting (and telling log) while another process
// holds it.
func lockFile(ctx context.Context, path string, log io.Writer) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("kubebox: lock %s: %w", path, err)
		}
		if !told {
			fmt.Fprintf(log, "kubebox: waiting for another build holding %s\n", path)
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
