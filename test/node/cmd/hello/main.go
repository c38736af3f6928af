// Command hello is the node suite's own smallest workload: it answers HTTP on :8080 with its pod name and
// the caller's address, logs one line per request (read back through `kubectl logs`), and with
// `hello get URL` or `hello resolve NAME` acts as a client inside a pod (Service DNS, Service IPs).
package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "get" {
		// Retried for a while: a Service that was just created may not be programmed on the node yet.
		c := http.Client{Timeout: 10 * time.Second}
		deadline := time.Now().Add(30 * time.Second)
		resp, err := c.Get(os.Args[2])
		for err != nil && time.Now().Before(deadline) {
			log.Printf("get %s: %v (retrying)", os.Args[2], err)
			time.Sleep(time.Second)
			resp, err = c.Get(os.Args[2])
		}
		if err != nil {
			log.Fatalf("get %s: %v", os.Args[2], err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Printf("%d %s\n", resp.StatusCode, body)
		return
	}
	if len(os.Args) == 3 && os.Args[1] == "resolve" {
		addrs, err := net.LookupHost(os.Args[2])
		if err != nil {
			log.Fatalf("resolve %s: %v", os.Args[2], err)
		}
		fmt.Println(addrs)
		return
	}
	name, _ := os.Hostname()
	log.Printf("hello %s listening on :8080", name)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		log.Printf("request from %s %s", r.RemoteAddr, r.URL.Path)
		// A title, so browsers (and sandcanary-bench --expect-title) can check they loaded this page.
		fmt.Fprintf(w, "<!doctype html><title>sandcanary hello</title><p>hello from %s to %s</p>\n", name, r.RemoteAddr)
	})
	log.Fatal(http.ListenAndServe(":8080", nil))
}
