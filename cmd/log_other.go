//go:build !unix

package cmd

import "os"

// devIno reports no device and inode: there is no journal here.
func devIno(*os.File) (dev, ino uint64, ok bool) { return 0, 0, false }
