// Package rollouts proves the real Argo Rollouts controller (built from its Go module) runs against the real
// API server: it reconciles AnalysisRuns with a built-in provider against a loopback HTTP server.
package rollouts
