package migrate

import (
	"slices"
	"testing"
	"testing/fstest"
)

// TestTriggers: the triggers left are those the Up sections create and do
// not drop, by themselves or with their table; comments and Down sections
// count for nothing.
func TestTriggers(t *testing.T) {
	fsys := fstest.MapFS{
		"001_a.sql": {Data: []byte(`-- CREATE TRIGGER in_a_comment BEFORE UPDATE ON x
-- +goose Up
CREATE TABLE t (a INTEGER);
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
CREATE TABLE u (a INTEGER);
CREATE TRIGGER u_guard AFTER UPDATE OF a ON u WHEN NEW.a > OLD.a BEGIN SELECT 1; END;
DROP TABLE t;
CREATE TABLE t (a INTEGER);
CREATE TRIGGER t_no_update BEFORE UPDATE ON t BEGIN SELECT RAISE(ABORT, 'no'); END;
`)},
	}
	want := []Trigger{{Name: "t_no_update", Table: "t", Migration: "002_b.sql"}, {Name: "u_guard", Table: "u", Migration: "002_b.sql"}}
	if got := Triggers(fsys); !slices.Equal(got, want) {
		t.Errorf("triggers: %+v, want %+v", got, want)
	}
	if got := Missing(want, []string{"u.u_guard", "u.t_no_update", "other"}); !slices.Equal(got, want[:1]) {
		t.Errorf("missing: %+v, want %+v", got, want[:1])
	}
}
