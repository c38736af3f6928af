// Package sim tests cmd/sandbox-sim, the stand-in for the sandbox controllers, against the real API server.
package sim
