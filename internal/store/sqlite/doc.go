// Package sqlite implements runproof.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go), the default engine of a single server.
//
// Its SQL and migrations are its own; it shares nothing with the PostgreSQL
// engine but the conformance suite in internal/store/storetest. It never lets
// a driver type or error past its methods: callers see runproof values and
// *runproof.Error codes only.
package sqlite
