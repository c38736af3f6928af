// Command gobgolden writes the golden gob streams and their expectations (calls.json) into -out.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"os"
	"path/filepath"

	"sandcanary.invalid/conformance/golden"
)

func main() {
	out := flag.String("out", "", "directory to write into")
	flag.Parse()
	if *out == "" {
		log.Fatal("-out is required")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	s := golden.Generate()
	for name, b := range s.Files {
		if err := os.WriteFile(filepath.Join(*out, name), b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	calls, err := json.MarshalIndent(s.Calls, "", "  ")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*out, "calls.json"), append(calls, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
}
