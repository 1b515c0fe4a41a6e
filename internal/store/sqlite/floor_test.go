package sqlite

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkReadFloor is the floor of reading anything back through this
// driver: a tenant's 10 000 rows of one 800-byte blob each (a table shaped
// as ledger_entries, blobs the size of a ledger leaf), each blob hashed
// with SHA-256 as it is read, nothing else.
//
//   - rows: one query, a row per blob.
//   - packed: a query per thousand blobs, which SQLite concatenates into
//     one value (group_concat): moving the per-row work into the database.
//
// "x-sha256" is the ratio to SHA-256 of the same bytes in memory, timed in
// the same run: a bound under every check that reads its data from the
// store, such as `ledger verify`.
func BenchmarkReadFloor(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "floor.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const rows, size, pack = 10_000, 800, 1000
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE floor (tenant_id TEXT NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL,
		PRIMARY KEY (tenant_id, idx)) STRICT`); err != nil {
		b.Fatal(err)
	}
	data := make([][]byte, rows)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range data {
		data[i] = make([]byte, size)
		for k := range data[i] {
			data[i][k] = byte('a' + (i+k)%26)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO floor (tenant_id, idx, data) VALUES ('acme', ?, ?)`, i, data[i]); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	report := func(b *testing.B) {
		perOp := b.Elapsed() / time.Duration(b.N)
		b.StopTimer()
		const rounds = 20
		start := time.Now()
		for range rounds {
			for _, d := range data {
				sha256.Sum256(d)
			}
		}
		sha := time.Since(start) / rounds
		b.ReportMetric(float64(perOp.Nanoseconds())/rows, "ns/row")
		b.ReportMetric(float64(perOp)/float64(sha), "x-sha256")
	}

	b.Run("rows", func(b *testing.B) {
		for b.Loop() {
			r, err := s.db.QueryContext(ctx, `SELECT data FROM floor WHERE tenant_id = 'acme' ORDER BY idx`)
			if err != nil {
				b.Fatal(err)
			}
			var blob []byte
			n := 0
			for r.Next() {
				if err := r.Scan(&blob); err != nil {
					b.Fatal(err)
				}
				sha256.Sum256(blob)
				n++
			}
			if err := r.Err(); err != nil || n != rows {
				b.Fatalf("%d rows, %v", n, err)
			}
			r.Close()
		}
		report(b)
	})
	b.Run("packed", func(b *testing.B) {
		for b.Loop() {
			for from := 0; from < rows; from += pack {
				var blob []byte
				if err := s.db.QueryRowContext(ctx, `SELECT group_concat(data, '') FROM (SELECT data FROM floor
					WHERE tenant_id = 'acme' AND idx >= ? AND idx < ? ORDER BY idx)`, from, from+pack).Scan(&blob); err != nil {
					b.Fatal(err)
				}
				if len(blob) != pack*size {
					b.Fatalf("%d bytes packed, want %d", len(blob), pack*size)
				}
				for k := 0; k < len(blob); k += size {
					sha256.Sum256(blob[k : k+size])
				}
			}
		}
		report(b)
	})
}
