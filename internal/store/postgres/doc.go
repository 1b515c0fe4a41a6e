// Package postgres implements runproof.Store on PostgreSQL (pgx), for
// deployments that run more than one server or want a managed database.
//
// Its SQL and migrations are its own; it shares nothing with the SQLite
// engine but the conformance suite in internal/store/storetest, which both
// must pass in full. It never lets a pgx type or error past its methods:
// callers see runproof values and *runproof.Error codes only.
package postgres
