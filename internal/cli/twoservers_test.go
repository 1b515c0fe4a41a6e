package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/cli"
	"github.com/runproof/runproof/internal/store/storetest"
)

// runAsCommand, set in the environment, makes the test binary run as the
// runproof command, so that tests can start servers as processes of their
// own without building the binary.
const runAsCommand = "RUNPROOF_TEST_RUN_AS_COMMAND"

func TestMain(m *testing.M) {
	if os.Getenv(runAsCommand) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// startServer starts `runproof serve` as a process of its own on a free
// port and returns its base URL; it is stopped (SIGTERM) when the test
// ends, and must exit 0.
func startServer(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), runAsCommand+"=1", cli.DatabaseURLEnv+"=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan string, 1)
	var log bytes.Buffer // what the server logged, for failures
	var logMu sync.Mutex
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		addrRE := regexp.MustCompile(`msg=listening addr=(127\.0\.0\.1:\d+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			fmt.Fprintln(&log, sc.Text())
			logMu.Unlock()
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				addrs <- m[1]
			}
		}
	}()
	logged := func() string { logMu.Lock(); defer logMu.Unlock(); return log.String() }
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-copied
		if err := cmd.Wait(); err != nil {
			t.Errorf("server %d: %v\n%s", cmd.Process.Pid, err, logged())
		}
	})
	select {
	case addr := <-addrs:
		return "http://" + addr
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not listen within 30 s:\n%s", logged())
		return ""
	}
}

// TestTwoServersExportAtOnce runs two `runproof serve` processes on one
// PostgreSQL database and has both export at once: afterwards every
// export has its own ledger index, and `runproof ledger verify` passes.
func TestTwoServersExportAtOnce(t *testing.T) {
	dbURL := storetest.PostgresURL(t)
	data := t.TempDir() // shared: the signing key and the artifacts
	if r := runCLI(t, "", "demo", "--database", dbURL, "--data", data, "--out", t.TempDir()); r.code != 0 {
		t.Fatalf("demo: %d\n%s", r.code, r.stderr)
	}
	r := runCLI(t, "", "keys", "create", "--tenant", "demo", "--role", "exporter", "--database", dbURL, "--data", data)
	if r.code != 0 {
		t.Fatalf("keys create: %s", r.stderr)
	}
	key := strings.TrimSpace(r.stdout)
	servers := []string{startServer(t, "--database", dbURL, "--data", data), startServer(t, "--database", dbURL, "--data", data)}

	call := func(method, url string, body any, out any) int {
		t.Helper()
		var in io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			in = bytes.NewReader(b)
		}
		req, err := http.NewRequest(method, url, in)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Error(err)
		}
		if out != nil && resp.StatusCode < 300 {
			if err := json.Unmarshal(b, out); err != nil {
				t.Errorf("%s %s: %v: %s", method, url, err, b)
			}
		} else if resp.StatusCode >= 300 {
			t.Errorf("%s %s: %d %s", method, url, resp.StatusCode, b)
		}
		return resp.StatusCode
	}

	var incidents struct {
		Items []struct {
			ID string `json:"incident_id"`
		}
	}
	call("GET", servers[0]+"/api/v1/incidents", nil, &incidents)
	if len(incidents.Items) == 0 {
		t.Fatal("the demo opened no incident")
	}
	type exported struct{ ID string }
	const n = 24
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := map[string]any{"scope": "llm_run", "incident_id": incidents.Items[i%len(incidents.Items)].ID,
				"bundle_type": []string{"evidence", "soc2", "executive_debrief"}[i%3],
				"format":      []string{"json", "csv", "zip"}[i/3%3]}
			var rec exported
			if call("POST", servers[i%2]+"/api/v1/exports", body, &rec) == http.StatusCreated {
				ids[i] = rec.ID
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	seen := map[int64]string{}
	for i, id := range ids {
		var proof struct {
			Index    int64 `json:"index"`
			TreeSize int64 `json:"tree_size"`
		}
		call("GET", servers[(i+1)%2]+"/api/v1/exports/"+id+"/proof", nil, &proof)
		if other, ok := seen[proof.Index]; ok {
			t.Errorf("exports %s and %s have the same ledger index %d", other, id, proof.Index)
		}
		seen[proof.Index] = id
		if proof.Index >= proof.TreeSize {
			t.Errorf("export %s: index %d in a tree of %d", id, proof.Index, proof.TreeSize)
		}
	}

	r = runCLI(t, "", "ledger", "verify", "--tenant", "demo", "--database", dbURL, "--data", data)
	if r.code != 0 || !strings.Contains(r.stdout, "demo: ok") {
		t.Errorf("ledger verify: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Log(strings.TrimSpace(r.stdout))
}
