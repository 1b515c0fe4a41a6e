// Package postgres implements runproof.Store on PostgreSQL (pgx), for
// deployments that run more than one server or want a managed database.
//
// Its SQL and migrations are its own; it shares with the SQLite engine only
// the migration runner (internal/store/migrate) and the conformance suite
// in internal/store/storetest, which both must pass in full. It never lets a pgx type past its methods, and turns
// what the caller must act on into *runproof.Error codes (ENOTFOUND,
// ECONFLICT…). Other errors wrap pgx's, with %w: runproof.ErrorCode reads
// an unreachable or full database from them as EUNAVAILABLE, and the
// server logs them whole.
package postgres
