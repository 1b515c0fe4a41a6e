package evidence_test

import (
	"fmt"
	"time"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/evidence/evidencetest"
	"github.com/runproof/runproof/internal/runproof"
)

func ExampleBuildEvidence() {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	snap, _ := runproof.NewSnapshot("t1", nil, at)
	step := runproof.Step{Index: 0, Timestamp: at, StepType: "llm", InputTokens: 10, CostMicrocents: 2_500_000, Status: runproof.StepOK}
	step.ContentHash = runproof.StepContentHash(step)
	src := evidence.Source{
		Run: runproof.Run{TenantID: "t1", ID: "run-1", AgentID: "a1", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
			Status: runproof.RunCompleted, SnapshotID: snap.ID, StartedAt: at, Totals: runproof.Totals{}.Add(step)},
		Snapshot: snap,
		Steps:    evidence.StepsOf([]runproof.Step{step}),
	}
	b, err := evidence.BuildEvidence(src, evidence.Options{BundleID: "0001", CreatedAt: at, IncludeRawSteps: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	data, _ := evidencetest.Canonical(b)
	fmt.Println(b.BundleID, b.TotalCostCents, b.ExportedBy)
	fmt.Println(evidencetest.VerifyContentHash(data))
	// Output:
	// EVD-0001 2.5 system
	// <nil>
}
