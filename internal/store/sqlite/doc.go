// Package sqlite implements runproof.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go), the default engine of a single server.
//
// Its SQL and migrations are its own; it shares with the PostgreSQL engine
// only the migration runner (internal/store/migrate) and the conformance
// suite in internal/store/storetest. It never lets
// a driver type past its methods, and turns what the caller must act on
// into *runproof.Error codes (ENOTFOUND, ECONFLICT…). Other errors wrap the
// driver's, with %w: runproof.ErrorCode reads a busy, full or lost
// database from them as EUNAVAILABLE, and the server logs them whole.
package sqlite
