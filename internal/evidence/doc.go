// Package evidence builds the three export bundles of an incident or run —
// the engineer's evidence bundle, the auditor's SOC 2 bundle and the
// executive debrief — and computes and checks their content_hash.
//
// It is pure: it never performs I/O of its own, never reads the clock and
// never draws random numbers. Bundle ids and creation times come in through
// Options, the run's data through Source, so the same input always gives
// the same bytes. A run's steps stream: the caller's iterator gives them
// (Source.Steps), and the caller's Spool keeps them, in their canonical
// form, until the bundle is written; a bundle never holds them all in
// memory unless asked to (Options.KeepRows).
//
// Field names and enum values are a published contract that must not
// change (docs/bundles.md, docs/schema); docs/bundles.md describes
// the fields runproof adds, the rule for optional fields, the content_hash
// recipe, the SOC 2 status rules, the risk table and the cost-prevented
// estimate. docs/schema holds a JSON Schema for each bundle.
package evidence
