// Package infra holds the tests proving the real API server environment works: the server starts, our CRDs
// and Argo's install, objects of each kind round-trip with their status subresource, and server-side dry
// runs accept valid objects and reject invalid ones.
package infra
