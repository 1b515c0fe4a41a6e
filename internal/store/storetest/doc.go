// Package storetest is the one conformance suite every runproof.Store engine
// must pass (Exercise), and the helpers that open a real, migrated, empty
// store for tests of any package (OpenSQLite, OpenPostgres, Each).
//
// PostgreSQL tests run when RUNPROOF_TEST_POSTGRES_URL is set, each in a
// fresh schema dropped afterwards; they are skipped, loudly, when it is not.
// CI always sets it.
package storetest
