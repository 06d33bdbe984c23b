package faults

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// DefaultDiskSize is the size of each node's tmpfs when a run injects DiskFull. A node takes
// about 16 MiB through a 25-second run under the clients (measured: 16.1-16.5 MiB; the WAL
// preallocates 16 MiB segments, fsm.db and the WAL's meta database are small), 32 MiB after
// a --rejoin (the old files are kept beside the new ones); a snapshot (at most two are kept)
// is about fsm.db's size. 128 MiB leaves room for all of that several times over; it costs
// memory only while a DiskFull fault fills it.
const DefaultDiskSize = 128 << 20

// fillerName is the file DiskFull writes at the root of a node's tmpfs (beside, not in, its
// data directory).
const fillerName = "faults-filler"

var tmpfsCheck struct {
	once sync.Once
	err  error
}

// CanMountTmpfs says why a tmpfs cannot be mounted here, or nil when it can: it mounts and
// unmounts a small one once per process to find out (root alone is not enough inside some
// containers).
func CanMountTmpfs() error {
	tmpfsCheck.once.Do(func() {
		if os.Geteuid() != 0 {
			tmpfsCheck.err = errors.New("a full disk needs root (mount -t tmpfs): not running as root")
			return
		}
		dir, err := os.MkdirTemp("", "ebbflow-faults-tmpfs-check-")
		if err != nil {
			tmpfsCheck.err = err
			return
		}
		defer func() { _ = os.Remove(dir) }()
		if err := mountTmpfs(dir, 1<<20); err != nil {
			tmpfsCheck.err = fmt.Errorf("a full disk needs a tmpfs of its own per node: %w", err)
			return
		}
		tmpfsCheck.err = unmountTmpfs(dir)
	})
	return tmpfsCheck.err
}

// mountTmpfs mounts a tmpfs of size bytes on dir.
func mountTmpfs(dir string, size int64) error {
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		return fmt.Errorf("mount -t tmpfs -o size=%d tmpfs %s: %w", size, dir, err)
	}
	return nil
}

// unmountTmpfs unmounts dir, lazily when something still holds it.
func unmountTmpfs(dir string) error {
	err := syscall.Unmount(dir, 0)
	if errors.Is(err, syscall.EBUSY) {
		err = syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("umount %s: %w", dir, err)
	}
	return nil
}

// diskUsage is the used and total bytes of the file system holding dir.
func diskUsage(dir string) (used, total int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	total = int64(st.Blocks) * st.Bsize
	return total - int64(st.Bfree)*st.Bsize, total, nil
}

// fill writes path until the file system holding it is full (ENOSPC), in 1 MiB and then
// 4 KiB writes so that not a page is left, and returns how many bytes it wrote.
func fill(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	var written int64
	for _, size := range []int{1 << 20, 4 << 10, 1} {
		buf := make([]byte, size)
		for i := range buf {
			buf[i] = 0xf5
		}
		for {
			n, err := f.Write(buf)
			written += int64(n)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				f.Close()
				return written, err
			}
		}
	}
	return written, f.Close()
}

// FillDisk fills node i's tmpfs and returns how much it wrote and how much the node's data
// took before.
func (g *Group) FillDisk(i int) (filled, used int64, err error) {
	n := g.Nodes[i]
	if n.Disk == "" {
		return 0, 0, fmt.Errorf("faults: %s has no disk of its own (GroupOptions.DiskSize)", n.ID)
	}
	if used, _, err = diskUsage(n.Disk); err != nil {
		return 0, 0, err
	}
	filled, err = fill(filepath.Join(n.Disk, fillerName))
	return filled, used, err
}

// FreeDisk removes what FillDisk wrote on node i's tmpfs.
func (g *Group) FreeDisk(i int) error {
	n := g.Nodes[i]
	if n.Disk == "" {
		return nil
	}
	if err := os.Remove(filepath.Join(n.Disk, fillerName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
