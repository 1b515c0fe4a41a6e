// Package service is runproof's application layer: it validates what agents
// and operators send, freezes policy snapshots, judges steps with package
// policy, opens incidents and answers the reads. The HTTP API, the CLI and
// bulk ingest all go through it, so every path applies the same rules.
//
// It talks to storage only through runproof.Store and never writes HTTP or
// terminal output.
package service
