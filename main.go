// Command zsync keeps ZFS datasets safe on another pool or host.
package main

import (
	"os"

	"github.com/zsync-dev/zsync/cmd"
)

func main() { os.Exit(cmd.Main(os.Args)) }
