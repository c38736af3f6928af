// Package saasfake holds the fakes of the SaaS APIs the plugin talks to, in their published shapes: GitHub's
// REST API for issues and comments, and an OpenAI-compatible chat/completions endpoint. The argoe2e tests
// serve them in-process; cmd/saas-fake serves them as a pod on the one-node cluster (test/node).
package saasfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// GitHub serves the part of GitHub's REST API the reporter uses, in GitHub's published shapes
// (https://docs.github.com/rest/issues): list issues by state and labels, create an issue, update its
// state, list and create comments. Anything else is 404; a wrong token is 401 "Bad credentials".
type GitHub struct {
	owner, repo, token string

	mu       sync.Mutex
	issues   []map[string]any
	comments map[int][]map[string]any
	requests []string
	nextID   int
}

func NewGitHub(owner, repo, token string) *GitHub {
	return &GitHub{owner: owner, repo: repo, token: token, comments: map[int][]map[string]any{}, nextID: 1000}
}

func ghError(w http.ResponseWriter, status int, message, doc string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"message": message, "documentation_url": doc, "status": strconv.Itoa(status)})
}

func ghJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-RateLimit-Limit", "5000")
	w.Header().Set("X-RateLimit-Remaining", "4999")
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func ghUser(login string, id int) map[string]any {
	return map[string]any{
		"login": login, "id": id, "node_id": fmt.Sprintf("MDQ6VXNlcj%d", id),
		"avatar_url": fmt.Sprintf("https://avatars.githubusercontent.com/u/%d?v=4", id), "gravatar_id": "",
		"url": "https://api.github.com/users/" + login, "html_url": "https://github.com/" + login,
		"type": "User", "site_admin": false,
	}
}

func (g *GitHub) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /repos/{owner}/{repo}/issues", g.authed(g.listIssues))
	mux.HandleFunc("POST /repos/{owner}/{repo}/issues", g.authed(g.createIssue))
	mux.HandleFunc("PATCH /repos/{owner}/{repo}/issues/{number}", g.authed(g.updateIssue))
	mux.HandleFunc("GET /repos/{owner}/{repo}/issues/{number}/comments", g.authed(g.listComments))
	mux.HandleFunc("POST /repos/{owner}/{repo}/issues/{number}/comments", g.authed(g.createComment))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		g.record(r)
		ghError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest")
	})
	return mux
}

func (g *GitHub) record(r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.requests = append(g.requests, r.Method+" "+r.URL.RequestURI())
}

// authed checks the bearer token and the repository before calling next with the lock held.
func (g *GitHub) authed(next func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		g.record(r)
		auth := r.Header.Get("Authorization")
		if auth != "Bearer "+g.token && auth != "token "+g.token {
			ghError(w, http.StatusUnauthorized, "Bad credentials", "https://docs.github.com/rest")
			return
		}
		if r.PathValue("owner") != g.owner || r.PathValue("repo") != g.repo {
			ghError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest")
			return
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		next(w, r)
	}
}

func (g *GitHub) apiURL(path string) string {
	return fmt.Sprintf("https://api.github.com/repos/%s/%s%s", g.owner, g.repo, path)
}

func labelNames(issue map[string]any) []string {
	var names []string
	for _, l := range issue["labels"].([]any) {
		names = append(names, l.(map[string]any)["name"].(string))
	}
	return names
}

func (g *GitHub) listIssues(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	var wanted []string
	if l := q.Get("labels"); l != "" {
		wanted = strings.Split(l, ",")
	}
	perPage, _ := strconv.Atoi(q.Get("per_page"))
	if perPage <= 0 || perPage > 100 {
		perPage = 30
	}
	page, _ := strconv.Atoi(q.Get("page"))
	if page <= 0 {
		page = 1
	}
	var matching []any
	for i := len(g.issues) - 1; i >= 0; i-- { // newest first
		issue := g.issues[i]
		if state != "all" && issue["state"] != state {
			continue
		}
		names := labelNames(issue)
		ok := true
		for _, w := range wanted {
			ok = ok && slices.Contains(names, w)
		}
		if ok {
			matching = append(matching, issue)
		}
	}
	start := min((page-1)*perPage, len(matching))
	end := min(start+perPage, len(matching))
	ghJSON(w, http.StatusOK, append([]any{}, matching[start:end]...))
}

func (g *GitHub) createIssue(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Title     string   `json:"title"`
		Body      string   `json:"body"`
		Labels    []string `json:"labels"`
		Assignees []string `json:"assignees"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		ghError(w, http.StatusBadRequest, "Problems parsing JSON", "https://docs.github.com/rest/issues/issues#create-an-issue")
		return
	}
	if body.Title == "" {
		ghJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"message":           "Validation Failed",
			"errors":            []any{map[string]any{"resource": "Issue", "code": "missing_field", "field": "title"}},
			"documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue", "status": "422",
		})
		return
	}
	g.nextID++
	number := len(g.issues) + 1
	api := g.apiURL(fmt.Sprintf("/issues/%d", number))
	labels := []any{}
	for i, name := range body.Labels {
		labels = append(labels, map[string]any{"id": 5000 + i, "node_id": fmt.Sprintf("LA_%d", i),
			"url": g.apiURL("/labels/" + name), "name": name, "color": "ededed", "default": false, "description": nil})
	}
	assignees := []any{}
	for i, login := range body.Assignees {
		assignees = append(assignees, ghUser(login, 200+i))
	}
	var assignee any
	if len(assignees) > 0 {
		assignee = assignees[0]
	}
	now := time.Now().UTC().Format(time.RFC3339)
	issue := map[string]any{
		"id": g.nextID, "node_id": fmt.Sprintf("I_kwDO%d", g.nextID), "url": api,
		"repository_url": g.apiURL(""), "labels_url": api + "/labels{/name}", "comments_url": api + "/comments",
		"events_url": api + "/events", "html_url": fmt.Sprintf("https://github.com/%s/%s/issues/%d", g.owner, g.repo, number),
		"number": number, "state": "open", "state_reason": nil, "title": body.Title, "body": body.Body,
		"user": ghUser("sandcanary-bot", 100), "labels": labels, "assignee": assignee, "assignees": assignees,
		"milestone": nil, "locked": false, "active_lock_reason": nil, "comments": 0, "closed_at": nil,
		"created_at": now, "updated_at": now, "closed_by": nil, "author_association": "NONE",
	}
	g.issues = append(g.issues, issue)
	ghJSON(w, http.StatusCreated, issue)
}

func (g *GitHub) issue(r *http.Request) (map[string]any, int) {
	n, err := strconv.Atoi(r.PathValue("number"))
	if err != nil || n < 1 || n > len(g.issues) {
		return nil, 0
	}
	return g.issues[n-1], n
}

func (g *GitHub) updateIssue(w http.ResponseWriter, r *http.Request) {
	issue, _ := g.issue(r)
	if issue == nil {
		ghError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/issues/issues#update-an-issue")
		return
	}
	var body struct {
		State       string  `json:"state"`
		StateReason *string `json:"state_reason"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		ghError(w, http.StatusBadRequest, "Problems parsing JSON", "https://docs.github.com/rest/issues/issues#update-an-issue")
		return
	}
	switch body.State {
	case "":
	case "open":
		issue["state"], issue["state_reason"], issue["closed_at"] = "open", "reopened", nil
	case "closed":
		// GitHub: state_reason completed (default), not_planned or duplicate; closing again keeps closed_at.
		reason := "completed"
		if body.StateReason != nil {
			reason = *body.StateReason
		}
		if reason != "completed" && reason != "not_planned" && reason != "duplicate" {
			ghError(w, http.StatusUnprocessableEntity, "Validation Failed", "https://docs.github.com/rest/issues/issues#update-an-issue")
			return
		}
		if issue["state"] != "closed" {
			issue["closed_at"] = time.Now().UTC().Format(time.RFC3339)
		}
		issue["state"], issue["state_reason"] = "closed", reason
	default:
		ghError(w, http.StatusUnprocessableEntity, "Validation Failed", "https://docs.github.com/rest/issues/issues#update-an-issue")
		return
	}
	ghJSON(w, http.StatusOK, issue)
}

func (g *GitHub) listComments(w http.ResponseWriter, r *http.Request) {
	issue, n := g.issue(r)
	if issue == nil {
		ghError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/issues/comments#list-issue-comments")
		return
	}
	q := r.URL.Query()
	perPage, _ := strconv.Atoi(q.Get("per_page"))
	if perPage <= 0 || perPage > 100 {
		perPage = 30
	}
	page, _ := strconv.Atoi(q.Get("page"))
	if page <= 0 {
		page = 1
	}
	all := g.comments[n]
	start := min((page-1)*perPage, len(all))
	end := min(start+perPage, len(all))
	out := []any{}
	for _, c := range all[start:end] {
		out = append(out, c)
	}
	ghJSON(w, http.StatusOK, out)
}

func (g *GitHub) createComment(w http.ResponseWriter, r *http.Request) {
	issue, n := g.issue(r)
	if issue == nil {
		ghError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/issues/comments#create-an-issue-comment")
		return
	}
	var body struct {
		Body string `json:"body"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Body == "" {
		ghError(w, http.StatusUnprocessableEntity, "Validation Failed", "https://docs.github.com/rest/issues/comments#create-an-issue-comment")
		return
	}
	g.nextID++
	now := time.Now().UTC().Format(time.RFC3339)
	comment := map[string]any{
		"id": g.nextID, "node_id": fmt.Sprintf("IC_kwDO%d", g.nextID),
		"url":      g.apiURL(fmt.Sprintf("/issues/comments/%d", g.nextID)),
		"html_url": fmt.Sprintf("https://github.com/%s/%s/issues/%d#issuecomment-%d", g.owner, g.repo, n, g.nextID),
		"body":     body.Body, "user": ghUser("sandcanary-bot", 100), "created_at": now, "updated_at": now,
		"issue_url": g.apiURL(fmt.Sprintf("/issues/%d", n)), "author_association": "NONE",
	}
	g.comments[n] = append(g.comments[n], comment)
	issue["comments"] = len(g.comments[n])
	ghJSON(w, http.StatusCreated, comment)
}

// Snapshot returns copies of the issues (title, labels, state, comment count) for assertions.
type IssueView struct {
	Number        int
	Title         string
	Labels        []string
	Comments      int
	Body          string
	State         string
	CommentBodies []string
}

func (g *GitHub) Snapshot() []IssueView {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []IssueView
	for _, i := range g.issues {
		var bodies []string
		for _, c := range g.comments[i["number"].(int)] {
			bodies = append(bodies, c["body"].(string))
		}
		out = append(out, IssueView{Number: i["number"].(int), Title: i["title"].(string), Labels: labelNames(i),
			Comments: len(g.comments[i["number"].(int)]), Body: i["body"].(string), State: i["state"].(string),
			CommentBodies: bodies})
	}
	return out
}

func (g *GitHub) RequestLog() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.requests...)
}

// OpenAI is an OpenAI-compatible chat/completions endpoint
// (https://platform.openai.com/docs/api-reference/chat/create) that checks the bearer key and the
// strict json_schema response format, and answers with a fixed verdict.
type OpenAI struct {
	key    string
	answer string

	mu      sync.Mutex
	calls   int
	bad     []string
	prompts []string
}

// NewOpenAI answers every well-formed request carrying key with answer (the JSON the model would write).
func NewOpenAI(key, answer string) *OpenAI {
	return &OpenAI{key: key, answer: answer}
}

func (f *OpenAI) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls++
		if r.Header.Get("Authorization") != "Bearer "+f.key {
			f.bad = append(f.bad, "wrong or missing Authorization")
			ghJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
				"message": "Incorrect API key provided.", "type": "invalid_request_error", "param": nil, "code": "invalid_api_key"}})
			return
		}
		var req struct {
			Model          string           `json:"model"`
			Messages       []map[string]any `json:"messages"`
			ResponseFormat struct {
				Type       string `json:"type"`
				JSONSchema struct {
					Name   string         `json:"name"`
					Strict bool           `json:"strict"`
					Schema map[string]any `json:"schema"`
				} `json:"json_schema"`
			} `json:"response_format"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model == "" || len(req.Messages) == 0 {
			f.bad = append(f.bad, fmt.Sprintf("malformed request: %v", err))
			ghJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{
				"message": "We could not parse the JSON body of your request.", "type": "invalid_request_error", "param": nil, "code": nil}})
			return
		}
		var prompt strings.Builder
		for _, m := range req.Messages {
			if c, ok := m["content"].(string); ok {
				prompt.WriteString(c)
				prompt.WriteString("\n")
			}
		}
		f.prompts = append(f.prompts, prompt.String())
		if req.ResponseFormat.Type != "json_schema" || !req.ResponseFormat.JSONSchema.Strict || req.ResponseFormat.JSONSchema.Schema == nil {
			f.bad = append(f.bad, "response_format is not a strict json_schema")
		}
		ghJSON(w, http.StatusOK, map[string]any{
			"id": "chatcmpl-sandcanary", "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop", "logprobs": nil,
				"message": map[string]any{"role": "assistant", "content": f.answer, "refusal": nil}}},
			"usage": map[string]any{"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
		})
	})
	return mux
}

// SetAnswer changes the verdict the endpoint gives from now on.
func (f *OpenAI) SetAnswer(answer string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = answer
}

func (f *OpenAI) Stats() (int, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, append([]string(nil), f.bad...)
}

// Prompts returns the text of every request's messages, in order.
func (f *OpenAI) Prompts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.prompts...)
}

// State is what a test reads of the fakes running as a pod (GET /_fake/state on cmd/saas-fake).
type State struct {
	Issues     []IssueView `json:"issues"`
	Requests   []string    `json:"requests"`
	LLMCalls   int         `json:"llm_calls"`
	LLMBad     []string    `json:"llm_bad"`
	LLMPrompts []string    `json:"llm_prompts"`
}

// StateHandler serves the fakes' State as JSON.
func StateHandler(g *GitHub, f *OpenAI) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls, bad := f.Stats()
		ghJSON(w, http.StatusOK, State{Issues: g.Snapshot(), Requests: g.RequestLog(), LLMCalls: calls,
			LLMBad: bad, LLMPrompts: f.Prompts()})
	})
}
