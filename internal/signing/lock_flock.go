//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package signing

import (
	"os"
	"syscall"
)

// lockFile waits for an exclusive lock on f, which the system drops when f
// is closed or the process ends.
func lockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }
