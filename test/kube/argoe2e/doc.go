// Package argoe2e drives the real sandcanary-plugin from the real Argo Rollouts controller, with the
// project's own AnalysisTemplates (analysis-templates/) and argo-rollouts-config ConfigMap
// (deploy/argo-rollouts/file/), against two real sandcanary-proxy processes on the local backend, a
// fake GitHub REST API and a fake OpenAI-compatible endpoint. Its tests are behind the build tag
// argoe2e and run by `make test-argo-e2e`, which builds the binaries first.
package argoe2e
