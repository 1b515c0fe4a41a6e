// Command runproof records what AI agents do, stops them when they break a
// policy, and exports the evidence. See internal/cli for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/runproof/runproof/internal/cli"
)

func main() {
	// SIGHUP is a closed terminal: a server or an ingest started from it
	// stops as gracefully as on Ctrl-C.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	// After the first signal, restore the default handling, so that a second
	// one kills a process whose graceful shutdown hangs.
	go func() { <-ctx.Done(); stop() }()
	os.Exit(cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
