package migrate

import (
	"maps"
	"slices"
	"testing"
	"testing/fstest"
)

// TestReadGuards: the triggers and functions left are those the Up
// sections create and do not drop, by themselves or with their table,
// each with its last definition; comments and Down sections count for
// nothing.
func TestReadGuards(t *testing.T) {
	fsys := fstest.MapFS{
		"001_a.sql": {Data: []byte(`-- CREATE TRIGGER in_a_comment BEFORE UPDATE ON x
-- +goose Up
CREATE TABLE t (a INTEGER);
-- +goose StatementBegin
CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'no'; -- ever
END;
$$;
-- +goose StatementEnd
CREATE FUNCTION gone() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER t_no_update BEFORE UPDATE ON t BEGIN SELECT RAISE(ABORT, 'no'); END;
CREATE TRIGGER t_no_delete
    BEFORE DELETE ON t FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER gone BEFORE DELETE ON t BEGIN SELECT 1; END; -- CREATE TRIGGER trailing ON t
-- +goose Down
DROP TRIGGER t_no_delete;
CREATE TRIGGER only_down BEFORE DELETE ON t BEGIN SELECT 1; END;
`)},
		"002_b.sql": {Data: []byte(`-- +goose Up
DROP TRIGGER IF EXISTS gone ON t;
DROP FUNCTION gone();
CREATE TABLE u (a INTEGER);
-- +goose StatementBegin
CREATE TRIGGER u_guard AFTER UPDATE OF a ON u WHEN NEW.a > OLD.a -- only up
BEGIN
    SELECT 1;
    SELECT 2;
END;
-- +goose StatementEnd
DROP TABLE t;
CREATE TABLE t (a INTEGER);
CREATE TRIGGER IF NOT EXISTS t_no_update BEFORE UPDATE ON t BEGIN SELECT RAISE(ABORT, 'still no'); END;
`)},
	}
	got := ReadGuards(fsys)
	want := []Trigger{
		{Name: "t_no_update", Table: "t", Migration: "002_b.sql",
			Statement: "CREATE TRIGGER t_no_update BEFORE UPDATE ON t BEGIN SELECT RAISE(ABORT, 'still no'); END;"},
		{Name: "u_guard", Table: "u", Migration: "002_b.sql",
			Statement: "CREATE TRIGGER u_guard AFTER UPDATE OF a ON u WHEN NEW.a > OLD.a -- only up\nBEGIN\n    SELECT 1;\n    SELECT 2;\nEND;"},
	}
	if !slices.Equal(got.Triggers, want) {
		t.Errorf("triggers:\n%q\nwant\n%q", got.Triggers, want)
	}
	if w := map[string]string{"refuse": "\nBEGIN\n    RAISE EXCEPTION 'no'; -- ever\nEND;\n"}; !maps.Equal(got.Functions, w) {
		t.Errorf("functions: %q, want %q", got.Functions, w)
	}
}

// TestNormalize: statements that differ in spacing, or in a comment after
// their end, are the same; a comment within one counts, so that nothing
// hides after a "--" in a string.
func TestNormalize(t *testing.T) {
	same := [][2]string{
		{"CREATE TRIGGER x BEFORE UPDATE ON t\n    BEGIN SELECT 1; END; -- why", "CREATE TRIGGER x BEFORE UPDATE ON t BEGIN SELECT 1; END"},
		{"CREATE TRIGGER x BEFORE UPDATE ON t -- why\nBEGIN SELECT 1; END;", "CREATE TRIGGER x BEFORE UPDATE ON t -- why BEGIN SELECT 1; END"},
	}
	for _, c := range same {
		if Normalize(c[0]) != Normalize(c[1]) {
			t.Errorf("%q and %q differ: %q, %q", c[0], c[1], Normalize(c[0]), Normalize(c[1]))
		}
	}
	differ := [][2]string{
		{"CREATE TRIGGER x BEFORE UPDATE ON t BEGIN SELECT 1; END", "CREATE TRIGGER x BEFORE UPDATE ON t BEGIN SELECT 2; END"},
		{"BEGIN SELECT RAISE(ABORT, 'append-only'); END",
			"BEGIN SELECT RAISE(ABORT, 'x --') WHERE 0; SELECT ('\nappend-only'); END"},
	}
	for _, c := range differ {
		if Normalize(c[0]) == Normalize(c[1]) {
			t.Errorf("%q and %q are the same", c[0], c[1])
		}
	}
}

func TestDamaged(t *testing.T) {
	want := []Trigger{{Name: "a", Table: "t", Statement: "A"}, {Name: "b", Table: "t", Statement: "B"}, {Name: "c", Table: "u", Statement: "C"}}
	have := map[string]string{"t.a": "A", "t.b": "changed", "t.c": "C", "other": "X"}
	same := func(t Trigger, def string) bool { return t.Statement == def }
	if got, w := Damaged(want, have, same), want[1:]; !slices.Equal(got, w) {
		t.Errorf("damaged: %+v, want %+v", got, w)
	}
}
