// Command releases is the plugin download test's release server (test/node/argo.sh): it serves the files
// of a directory over HTTPS on :8443 with the given certificate and key, and logs each request with the
// caller's address, so the test can see the Argo Rollouts controller pod download the plugin.
//
//	releases DIR CERT KEY
package main

import (
	"log"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 4 {
		log.Fatal("usage: releases DIR CERT KEY")
	}
	files := http.FileServer(http.Dir(os.Args[1]))
	log.Printf("serving %s over https on :8443", os.Args[1])
	log.Fatal(http.ListenAndServeTLS(":8443", os.Args[2], os.Args[3],
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			log.Printf("request from %s %s", r.RemoteAddr, r.URL.Path)
			files.ServeHTTP(w, r)
		})))
}
