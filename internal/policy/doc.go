// Package policy judges steps against a frozen policy snapshot: the 80 %
// warning rule, limit breaches, denied step types and CEL expressions, and
// the risk level of an incident.
//
// It is pure: no I/O, no clock, no randomness. Given the same snapshot,
// totals and step it always gives the same result.
package policy
