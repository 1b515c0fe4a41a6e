package httpapi

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/runproof"
)

// exportView is the export record as the API shows it.
type exportView struct {
	runproof.Export
	DownloadURL string `json:"download_url,omitempty"`
}

// view shows an export record to the caller: a completed one with its
// download URL, signed for the caller's key unless the answer is kept as
// evidence (writeEvidence), which must not carry a working credential.
func (s *Server) view(c *call, e runproof.Export, signed bool) exportView {
	v := exportView{Export: e}
	if e.Status != runproof.ExportCompleted {
		return v
	}
	if signed {
		v.DownloadURL = s.downloadURL(c, e.ID)
	} else {
		v.DownloadURL = downloadPath(e.ID)
	}
	return v
}

type exportList struct {
	Items []exportView `json:"items"`
	// NextOffset is the offset of the next page, when there is one.
	NextOffset *int `json:"next_offset,omitempty"`
}

func (s *Server) requester(c *call) export.Requester {
	return export.Requester{ID: c.key.ID, Origin: c.key.Role.Origin(), SourceComponent: "api",
		CorrelationID: correlationID(c.r.Context()), Name: c.key.Name}
}

// exportError reports a failed export with its record id, so that the user
// can find the failed record. One cut short was cut by a server that is
// stopping (a client that went away reads nothing): another server, or
// this one restarted, will do it.
func exportError(err error) error {
	var failed *export.Failed
	if errors.As(err, &failed) {
		return failed.UserError()
	}
	return err
}

func (s *Server) createExport(w http.ResponseWriter, c *call) error {
	var in export.Input
	if err := decodeBody(c, &in, false); err != nil {
		return err
	}
	if prefersAsync(c.r) {
		rec, err := s.exports.Start(c.r.Context(), s.background, c.tenant(), s.requester(c), in)
		if err != nil {
			return exportError(err)
		}
		w.Header().Set("Location", "/api/v1/exports/"+rec.ID)
		w.Header().Set("Preference-Applied", "respond-async")
		return writeJSON(w, http.StatusAccepted, s.view(c, rec, true))
	}
	allowLongWrite(w, exportWriteTime)
	rec, err := s.exports.Export(c.r.Context(), c.tenant(), s.requester(c), in)
	if err != nil {
		return exportError(err)
	}
	w.Header().Set("Location", "/api/v1/exports/"+rec.ID)
	return writeJSON(w, http.StatusCreated, s.view(c, rec, true))
}

// exportWriteTime is how long the answer of an export made in its request
// may take to be written: the export (export.MaxDuration at most), then
// its artifact sent. The server's write timeout, minutes, is for the rest.
const exportWriteTime = export.MaxDuration + downloadWriteTime

// downloadWriteTime is how long sending an artifact may take: a large ZIP
// over a slow link.
const downloadWriteTime = time.Hour

// allowLongWrite lifts the server's write deadline for an answer that
// takes long to write, to d from now.
func allowLongWrite(w http.ResponseWriter, d time.Duration) {
	// An error means a writer without deadlines (a test's recorder): then
	// there is none to lift.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}

// prefersAsync reports whether a request asks to be answered before its
// work is done (RFC 7240 "Prefer: respond-async").
func prefersAsync(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for pref := range strings.SplitSeq(v, ",") {
			name, _, _ := strings.Cut(pref, ";")
			if strings.EqualFold(strings.TrimSpace(name), "respond-async") {
				return true
			}
		}
	}
	return false
}

func (s *Server) listExports(w http.ResponseWriter, c *call) error {
	q := c.r.URL.Query()
	items, next, _, err := s.exportViews(c, runproof.ListExportsParams{TenantID: c.tenant(), RunID: q.Get("run_id"), IncidentID: q.Get("incident_id")}, true)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, exportList{Items: items, NextOffset: next})
}

// exportViews lists the export records p selects, paged by the request's
// limit and offset, with the offset of the next page (nil when none) and
// the evidence metadata of the list; signed as in view.
func (s *Server) exportViews(c *call, p runproof.ListExportsParams, signed bool) ([]exportView, *int, runproof.EvidenceMeta, error) {
	var meta runproof.EvidenceMeta
	q := newQuery(c)
	p.From, p.To = q.period()
	if p.Limit, p.Offset = q.page(); q.err() != nil {
		return nil, nil, meta, q.err()
	}
	recs, next, err := readPage(p.Limit, p.Offset, func(limit int) ([]runproof.Export, error) {
		p.Limit = limit
		return s.exports.List(c.r.Context(), p)
	})
	if err != nil {
		return nil, nil, meta, err
	}
	items := make([]exportView, len(recs))
	for i, r := range recs {
		items[i] = s.view(c, r, signed)
		if r.IncidentID != "" {
			meta.IncidentIDs = append(meta.IncidentIDs, r.IncidentID)
		}
	}
	return items, next, meta, nil
}

func (s *Server) getExport(w http.ResponseWriter, c *call) error {
	rec, err := s.exports.Get(c.r.Context(), c.tenant(), c.r.PathValue("export_id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.view(c, rec, true))
}

var contentTypes = map[runproof.ExportFormat]string{
	runproof.FormatJSON: "application/json",
	runproof.FormatCSV:  "text/csv; charset=utf-8",
	runproof.FormatPDF:  "application/pdf",
	runproof.FormatZIP:  "application/zip",
}

// artifactMedia are the media types of the artifacts, for the OpenAPI
// document.
func artifactMedia() []string {
	var out []string
	for _, t := range contentTypes {
		m, _, _ := strings.Cut(t, ";")
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

func (s *Server) downloadExport(w http.ResponseWriter, c *call) error {
	allowLongWrite(w, downloadWriteTime)
	ctx, cancel := s.shortContext(c.r.Context()) // for the lookup; the sending may take long
	rec, f, err := s.exports.Open(ctx, c.tenant(), c.r.PathValue("export_id"))
	cancel()
	if err != nil {
		return err
	}
	defer f.Close()
	return s.sendArtifact(w, c, rec, f)
}

// sendArtifact streams an artifact with the digest headers of its record
// and records the first delivery. Exporter.Open checked the artifact
// against its record; the bytes are hashed again as they go out, for a
// file changed since: it is logged and not recorded as delivered, and the
// client sees it differ from Repr-Digest (the status line is sent by then).
func (s *Server) sendArtifact(w http.ResponseWriter, c *call, rec runproof.Export, f io.Reader) error {
	sum, err := hex.DecodeString(strings.TrimPrefix(rec.Checksum, runproof.DigestPrefix))
	if err != nil {
		return err
	}
	b64 := base64.StdEncoding.EncodeToString(sum)
	name := rec.BundleID
	if name == "" {
		name = rec.ID
	}
	h := w.Header()
	h.Set("Content-Type", contentTypes[rec.Format])
	h.Set("Content-Disposition", `attachment; filename="`+name+"."+string(rec.Format)+`"`)
	h.Set("Repr-Digest", "sha-256=:"+b64+":")
	h.Set("Digest", "sha-256="+b64)
	h.Set("X-Export-ID", rec.ID)
	h.Set("Content-Length", strconv.FormatInt(rec.SizeBytes, 10))
	w.WriteHeader(http.StatusOK)
	if c.r.Method == http.MethodHead { // the headers alone: nothing is delivered
		return nil
	}
	hash := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, hash), f)
	if err != nil {
		s.log.WarnContext(c.r.Context(), "download interrupted", slog.String("export_id", rec.ID), slog.Any("error", err))
		return nil // the status is sent; the client sees a short body
	}
	if n != rec.SizeBytes || runproof.DigestOf(hash) != rec.Checksum {
		s.log.ErrorContext(c.r.Context(), "artifact does not match its record", slog.String("export_id", rec.ID))
		return nil
	}
	// Recorded even when the client hangs up as soon as it has every byte.
	if err := s.exports.Delivered(context.WithoutCancel(c.r.Context()), rec); err != nil {
		s.log.ErrorContext(c.r.Context(), "delivery not recorded", slog.String("export_id", rec.ID), slog.Any("error", err))
	}
	return nil
}

// incidentExport answers POST /api/v1/incidents/{id}/export/{type} with the
// artifact itself.
func (s *Server) incidentExport(bundle runproof.BundleType) handler {
	return func(w http.ResponseWriter, c *call) error {
		var body incidentExportBody
		if err := decodeBody(c, &body, true); err != nil {
			return err
		}
		// the incident is the resource of the route: unknown is a 404
		ctx, cancel := s.shortContext(c.r.Context())
		_, err := s.svc.GetIncident(ctx, c.tenant(), c.r.PathValue("incident_id"))
		cancel()
		if err != nil {
			return err
		}
		allowLongWrite(w, exportWriteTime)
		rec, err := s.exports.Export(c.r.Context(), c.tenant(), s.requester(c), body.input(bundle, c.r.PathValue("incident_id")))
		if err != nil {
			return exportError(err)
		}
		rec, f, err := s.exports.Open(c.r.Context(), c.tenant(), rec.ID)
		if err != nil {
			return err
		}
		defer f.Close()
		return s.sendArtifact(w, c, rec, f)
	}
}

// input is the export request of an incident's bundle asked for with
// body d: of scope compliance for a SOC 2 bundle, as JSON by default.
func (d incidentExportBody) input(bundle runproof.BundleType, incidentID string) export.Input {
	scope := runproof.ScopeLLMRun
	if bundle == runproof.BundleSOC2 {
		scope = runproof.ScopeCompliance
	}
	return export.Input{Scope: scope, BundleType: bundle, IncidentID: incidentID, Format: cmp.Or(d.Format, runproof.FormatJSON),
		ExportReason: d.ExportReason, PreparedFor: d.PreparedFor, PreparedBy: d.PreparedBy, Classification: d.Classification,
		IncludeRawSteps: d.IncludeRawSteps, IncludeContent: d.IncludeContent, CorrelationID: d.CorrelationID}
}

// runExports answers O5 of a run: the formats it can be exported in and
// its past exports, newest first, a page at a time.
func (s *Server) runExports(w http.ResponseWriter, c *call) error {
	run, snap, err := s.runAndSnapshot(c)
	if err != nil {
		return err
	}
	items, next, pageMeta, err := s.exportViews(c, runproof.ListExportsParams{TenantID: c.tenant(), RunID: run.ID}, false)
	if err != nil {
		return err
	}
	bundles := []runproof.BundleType{runproof.BundleEvidence, runproof.BundleSOC2}
	if run.IncidentID != "" {
		bundles = append(bundles, runproof.BundleExecutiveDebrief)
	}
	meta := runMeta(run, snap)
	meta.IncidentIDs = append(meta.IncidentIDs, pageMeta.IncidentIDs...)
	return s.writeEvidence(w, c, runExportsDoc{RunID: run.ID, Formats: s.exports.Formats(), BundleTypes: bundles, Exports: items, NextOffset: next}, meta)
}

type runExportsDoc struct {
	RunID       string                  `json:"run_id"`
	Formats     []runproof.ExportFormat `json:"formats"`
	BundleTypes []runproof.BundleType   `json:"bundle_types"`
	Exports     []exportView            `json:"exports"`
	NextOffset  *int                    `json:"next_offset,omitempty"` // of the next page of exports, when there is one
}

func (s *Server) auditExports(w http.ResponseWriter, c *call) error {
	items, next, meta, err := s.exportViews(c, runproof.ListExportsParams{TenantID: c.tenant()}, false)
	if err != nil {
		return err
	}
	return s.writeEvidence(w, c, exportList{Items: items, NextOffset: next}, meta)
}

type reviewList struct {
	Items []runproof.Review `json:"items"`
}

func (s *Server) reviewExport(w http.ResponseWriter, c *call) error {
	var in export.ReviewInput
	if err := decodeBody(c, &in, false); err != nil {
		return err
	}
	r, err := s.exports.Review(c.r.Context(), c.key, c.r.PathValue("export_id"), in)
	if err != nil {
		return err
	}
	c.detail = fmt.Sprintf("%s by %s, run %s at %d steps (review %s)", r.Status, r.ReviewedBy, r.RunID, r.RunSteps, r.ID)
	return writeJSON(w, http.StatusCreated, r)
}

func (s *Server) exportReviews(w http.ResponseWriter, c *call) error {
	items, err := s.exports.Reviews(c.r.Context(), c.tenant(), c.r.PathValue("export_id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, reviewList{Items: items})
}
