package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/ledger"
)

type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	steps    *prometheus.CounterVec
	stops    prometheus.Counter
	rejected prometheus.Counter // OTLP spans not stored
}

// newMetrics returns the server's metrics, among them what audits and
// exports (when not nil) are doing, read as they are scraped.
func newMetrics(audits *auditRetry, exports *export.Exporter, led *ledger.Ledger) *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "runproof_audit_events_waiting",
			Help: "Audit events of answered requests waiting for the database to be written."},
			func() float64 { return float64(audits.waitingNow()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "runproof_audit_events_lost_total",
			Help: "Audit events dropped unstored: the database was away too long, too many waited, or one was refused."},
			func() float64 { return float64(audits.lost.Load()) }))
	if led != nil {
		m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "runproof_ledger_tenants_unsealed",
			Help: "Tenants whose audit events or steps the last sealing pass could not put into their ledger."},
			func() float64 { return float64(led.Unsealed()) }))
	}
	if exports != nil {
		stat := func(f func(export.Stats) float64) func() float64 { return func() float64 { return f(exports.Stats()) } }
		m.registry.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "runproof_exports_making",
				Help: "Exports recorded and not ended yet, background ones waiting for their turn included."},
				stat(func(s export.Stats) float64 { return float64(s.Making) })),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "runproof_exports_waiting",
				Help: "Exports started in the background that wait for their turn."},
				stat(func(s export.Stats) float64 { return float64(s.Waiting) })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "runproof_exports_total",
				Help: "Exports this server ended, by outcome.", ConstLabels: prometheus.Labels{"status": "completed"}},
				stat(func(s export.Stats) float64 { return float64(s.Completed) })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "runproof_exports_total",
				Help: "Exports this server ended, by outcome.", ConstLabels: prometheus.Labels{"status": "failed"}},
				stat(func(s export.Stats) float64 { return float64(s.Failed) })),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "runproof_ledger_tenants_behind",
				Help: "Tenants whose ledger misses a finished export this server could not append yet."},
				stat(func(s export.Stats) float64 { return float64(s.LedgerBehind) })))
	}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "runproof_http_requests_total",
		Help: "HTTP requests by route and status code."}, []string{"route", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "runproof_http_request_duration_seconds",
		Help: "HTTP request latency by route.", Buckets: prometheus.DefBuckets}, []string{"route"})
	m.steps = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "runproof_steps_ingested_total",
		Help: "Steps stored, by status."}, []string{"status"})
	m.stops = prometheus.NewCounter(prometheus.CounterOpts{Name: "runproof_stop_decisions_total",
		Help: "Step calls answered with a stop decision."})
	m.rejected = prometheus.NewCounter(prometheus.CounterOpts{Name: "runproof_otlp_spans_rejected_total",
		Help: "OTLP spans not stored, which the exporter was told of in partial_success."})
	m.registry.MustRegister(m.requests, m.latency, m.steps, m.stops, m.rejected,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(route string, code int, d time.Duration) {
	if code == 0 {
		code = http.StatusOK
	}
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
