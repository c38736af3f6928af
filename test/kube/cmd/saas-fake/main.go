// Command saas-fake serves the SaaS fakes of package saasfake as one program, so that they can run as a pod
// on the one-node cluster (test/node/canary-suite.sh): GitHub's REST API for issues under /repos/ (as
// https://api.github.com), an OpenAI-compatible API under /v1/ (as https://api.openai.com/v1), and what
// they saw at GET /_fake/state (issues, GitHub requests, LLM calls and prompts) for the test to read.
//
//	saas-fake -listen :8080 -owner example-org -repo sandcanary-proxy
//
// The GitHub token and the LLM key come from GITHUB_TOKEN and LLM_API_KEY; LLM_ANSWER is the model's
// answer (default: promote with confidence 92). Each request is logged on stderr.
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
	"time"

	"sandcanary/test/kube/saasfake"
)

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	owner := flag.String("owner", "example-org", "the repository's owner")
	repo := flag.String("repo", "sandcanary-proxy", "the repository")
	flag.Parse()
	token, key := os.Getenv("GITHUB_TOKEN"), os.Getenv("LLM_API_KEY")
	if token == "" || key == "" {
		log.Fatal("GITHUB_TOKEN and LLM_API_KEY must be set")
	}
	answer := os.Getenv("LLM_ANSWER")
	if answer == "" {
		answer = `{"promote":true,"confidence":92,"reasons":["canary latency matches stable"]}`
	}
	gh := saasfake.NewGitHub(*owner, *repo, token)
	llm := saasfake.NewOpenAI(key, answer)
	mux := http.NewServeMux()
	mux.Handle("/repos/", gh.Handler())
	mux.Handle("/v1/", llm.Handler())
	mux.Handle("GET /_fake/state", saasfake.StateHandler(gh, llm))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s from %s", r.Method, r.URL.RequestURI(), r.RemoteAddr)
		mux.ServeHTTP(w, r)
	})
	srv := &http.Server{Addr: *listen, Handler: logged, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("saas-fake: GitHub %s/%s and an OpenAI-compatible API on %s", *owner, *repo, *listen)
	log.Fatal(srv.ListenAndServe())
}
