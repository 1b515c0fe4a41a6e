// Package httpapi is runproof's HTTP/JSON interface: the routes (all in
// routes.go), authentication by API key, permissions by role, the audit
// event of every request, RFC 9457 problem+json errors, Prometheus metrics
// and the OpenAPI document generated from the route table.
//
// Handlers only translate between HTTP and package service; they hold no
// business rules and never touch storage directly.
package httpapi
