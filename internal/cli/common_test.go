package cli

import "testing"

// TestDatabaseEnv: the commands demo prints name $RUNPROOF_DATABASE_URL;
// a --database given otherwise is set in it first, without its password.
func TestDatabaseEnv(t *testing.T) {
	t.Setenv(DatabaseURLEnv, "")
	for db, want := range map[string]string{
		"": "",
		"postgres://u:secret@db:5432/x?sslmode=disable":     "  export " + DatabaseURLEnv + "='postgres://u@db:5432/x?sslmode=disable'   # the password left out: add it\n",
		"postgres://u@db/x":                                 "  export " + DatabaseURLEnv + "='postgres://u@db/x'\n",
		"postgres://u@db/x?password=secret&sslmode=disable": "  export " + DatabaseURLEnv + "='postgres://u@db/x?sslmode=disable'   # the password left out: add it\n",
	} {
		c := common{data: defaultData, database: db}
		if got := c.databaseEnv(); got != want {
			t.Errorf("--database %q: %q, want %q", db, got, want)
		}
	}
	t.Setenv(DatabaseURLEnv, "postgres://u@db/x")
	if got := (&common{database: "postgres://u@db/x"}).databaseEnv(); got != "" {
		t.Errorf("the variable holds the URL already: %q", got)
	}
}

// TestFlagWords: an export's fields are named by their flags, and only
// fields: "formatting" in a message stays a word.
func TestFlagWords(t *testing.T) {
	for msg, want := range map[string]string{
		"format: is required":                          "--format: is required",
		"run_id: give run_id or incident_id, not both": "--run: give --run or --incident, not both",
		"prepared_by: must not hold control characters or bidirectional formatting characters; format: is required": "--prepared-by: must not hold control characters or bidirectional formatting characters; --format: is required",
		"period_end: must be after period_start; classification: too long":                                          "--period-end: must be after --period-start; --classification: too long",
		"the export format zip needs a key":                                                                         "the export format zip needs a key",
	} {
		if got := flagWords(msg); got != want {
			t.Errorf("flagWords(%q) = %q, want %q", msg, got, want)
		}
	}
}
