// Package demo seeds a tenant with a realistic day of agent activity:
// policies of every type and a few dozen runs of five agents, most of them
// uneventful, several breaking a policy. The data is generated from a fixed
// seed, so the same day gives the same records.
//
// The runs are replayed through the service as an agent would send them,
// with the service's clock following the replay: each step is judged 40 ms
// after its own timestamp, so detection and containment times look like
// those of a live deployment.
package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
)

// Tenant is the demo tenant's id.
const Tenant = "demo"

// latency is how long after a step's timestamp runproof judges it.
const latency = 40 * time.Millisecond

// Options tune Seed.
type Options struct {
	Tenant string           // default Tenant
	Day    time.Time        // the UTC day the runs happen; required
	NewID  func() string    // record ids; default UUIDv7
	Store  runproof.Store   // required
	Hooks  func(run string) // called after each run is seeded (progress), may be nil
}

// Result is what Seed wrote.
type Result struct {
	Policies  int
	Runs      int
	Steps     int64
	Incidents []runproof.Incident // in the order they opened
	// Showcase is the incident the demo exports: the research agent's
	// runaway spending.
	Showcase runproof.Incident
}

// Seeded reports whether the demo is wholly in the store: its last run
// exists and has ended. A demo stopped while seeding is not, and Seed
// finishes it.
func Seeded(ctx context.Context, store runproof.Store, tenant string) (bool, error) {
	run, err := store.GetRun(ctx, tenant, runID(len(schedule())-1))
	switch runproof.ErrorCode(err) {
	case "":
		return run.Status != runproof.RunRunning, nil
	case runproof.ENOTFOUND:
		return false, nil
	}
	return false, err
}

// Seed writes the demo policies and runs, or what an interrupted Seed left
// out of them: a policy whose name the tenant has is not added again, a
// run that ended is kept, and a run left running is sent again (identical
// steps are no-ops) and ended.
func Seed(ctx context.Context, opts Options) (Result, error) {
	if opts.Tenant == "" {
		opts.Tenant = Tenant
	}
	// A seed that an interrupted one began goes on with that one's day,
	// so that the runs it left are sent again as they were.
	if first, err := opts.Store.GetRun(ctx, opts.Tenant, runID(0)); err == nil {
		opts.Day = first.StartedAt
	} else if runproof.ErrorCode(err) != runproof.ENOTFOUND {
		return Result{}, err
	}
	clock := &replayClock{t: opts.Day.UTC().Truncate(24 * time.Hour)}
	svc := service.New(opts.Store, service.Options{Now: clock.now, NewID: opts.NewID})
	var res Result
	active, err := opts.Store.ActivePolicies(ctx, opts.Tenant)
	if err != nil {
		return res, err
	}
	for _, p := range policies {
		if !slices.ContainsFunc(active, func(a runproof.Policy) bool { return a.Name == p.Name }) {
			if _, err := svc.CreatePolicies(ctx, opts.Tenant, p); err != nil {
				return res, fmt.Errorf("demo policy %q: %w", p.Name, err)
			}
		}
		res.Policies++
	}
	rng := rand.New(rand.NewPCG(2026, 11))
	start := clock.t.Add(7 * time.Hour)
	for i, sc := range schedule() {
		start = start.Add(time.Duration(9+rng.IntN(20)) * time.Minute)
		run := sc.plan(rng, start) // planned whether or not it is replayed, so that later runs are the same
		inc, err := seeded(ctx, opts.Store, opts.Tenant, runID(i))
		if err == nil && inc == nil {
			inc, err = replay(ctx, svc, clock, opts.Tenant, runID(i), run)
		} else if err == nil && inc.ID == "" {
			inc = nil // ended without an incident
		}
		if err != nil {
			return res, fmt.Errorf("demo run %s: %w", runID(i), err)
		}
		stored, err := opts.Store.GetRun(ctx, opts.Tenant, runID(i))
		if err != nil {
			return res, err
		}
		res.Runs++
		res.Steps += stored.Totals.Steps // a stopped run's steps end at the stop
		if inc != nil {
			res.Incidents = append(res.Incidents, *inc)
			if sc.showcase {
				res.Showcase = *inc
			}
		}
		if opts.Hooks != nil {
			opts.Hooks(runID(i))
		}
	}
	return res, nil
}

// seeded returns, for a run an earlier Seed ended, its incident, or an
// empty incident when it had none; nil when the run is still to replay.
func seeded(ctx context.Context, store runproof.Store, tenant, id string) (*runproof.Incident, error) {
	run, err := store.GetRun(ctx, tenant, id)
	switch {
	case runproof.ErrorCode(err) == runproof.ENOTFOUND:
		return nil, nil
	case err != nil:
		return nil, err
	case run.Status == runproof.RunRunning:
		return nil, nil
	case run.IncidentID == "":
		return &runproof.Incident{}, nil
	}
	inc, err := store.GetIncident(ctx, tenant, run.IncidentID)
	return &inc, err
}

func runID(i int) string { return "demo-run-" + fmt.Sprintf("%03d", i+1) }

// replayClock is the service's clock during the replay.
type replayClock struct{ t time.Time }

func (c *replayClock) now() time.Time { return c.t }

// plannedRun is one run to replay.
type plannedRun struct {
	agent, goal string
	start       time.Time
	steps       []service.StepInput
	end         time.Time
}

// replay sends a run as its agent would: open it, send each step as it
// ends, and complete it unless runproof stopped it. An agent that is told
// to stop sends nothing more.
func replay(ctx context.Context, svc *service.Service, clock *replayClock, tenant, id string, r plannedRun) (*runproof.Incident, error) {
	clock.t = r.start
	trace := sha256.Sum256([]byte(tenant + "/" + id))
	if _, _, err := svc.CreateRun(ctx, tenant, service.RunInput{RunID: id, AgentID: r.agent, Goal: r.goal,
		TraceID:   hex.EncodeToString(trace[:16]),
		StartedAt: r.start.Format(time.RFC3339Nano)}); err != nil {
		return nil, err
	}
	const batch = 1
	for from := 0; from < len(r.steps); from += batch {
		part := r.steps[from:min(from+batch, len(r.steps))]
		last, err := time.Parse(time.RFC3339Nano, part[len(part)-1].Timestamp)
		if err != nil {
			return nil, err
		}
		// A step is sent as it ends: its timestamp is its start, so
		// runproof judges it latency after timestamp + duration.
		ended := last
		if d := part[len(part)-1].DurationMs; d != "" {
			ended = last.Add(time.Duration(mustFloat(string(d)) * float64(time.Millisecond)))
		}
		clock.t = ended.Add(latency)
		steps, err := service.ValidateSteps(part, clock.t)
		if err != nil {
			return nil, err
		}
		res, err := svc.AppendSteps(ctx, tenant, id, steps)
		if err != nil {
			return nil, err
		}
		if res.Decision == service.AgentStop {
			inc, err := svc.GetIncident(ctx, tenant, res.IncidentID)
			return &inc, err
		}
	}
	clock.t = r.end
	_, err := svc.CompleteRun(ctx, tenant, id, service.CompleteInput{Status: runproof.RunCompleted,
		CompletedAt: r.end.Format(time.RFC3339Nano)})
	return nil, err
}

// cents formats a cost for a StepInput.
func cents(c float64) service.Number {
	return service.Number(strconv.FormatFloat(c, 'f', 4, 64))
}

// ShowcaseIncident returns the incident the demo exports, once seeded.
func ShowcaseIncident(ctx context.Context, store runproof.Store, tenant string) (runproof.Incident, error) {
	for i, sc := range schedule() {
		if !sc.showcase {
			continue
		}
		run, err := store.GetRun(ctx, tenant, runID(i))
		if err != nil {
			return runproof.Incident{}, err
		}
		return store.GetIncident(ctx, tenant, run.IncidentID)
	}
	return runproof.Incident{}, runproof.Errorf(runproof.ENOTFOUND, "the demo has no showcase run")
}
