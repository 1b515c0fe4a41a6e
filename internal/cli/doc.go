// Package cli is the runproof command line: one file per subcommand, parsed
// with the standard flag package. Main is the only entry point; it returns
// the exit status instead of exiting, so tests run commands in-process.
//
// Every error reaches the user as one line on stderr, "runproof: ...",
// saying what is wrong and how to fix it: exit status 2 for usage errors,
// 1 for everything else (and 3 from verify when a bundle could be checked
// for consistency only). stdout carries only results (a key, a summary), so
// that scripts can capture it.
//
// The CLI never bypasses the service layer: it validates and evaluates
// exactly as the HTTP API does.
package cli
