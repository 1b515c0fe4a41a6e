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
