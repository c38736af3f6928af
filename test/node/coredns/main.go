// Command coredns is CoreDNS (github.com/coredns/coredns, pinned in go.mod) with only the plugins the
// one-node cluster's Corefile uses: cluster names from the API (kubernetes), no forwarding out. Linking
// only these keeps the build small (the full plugin set pulls in every cloud SDK).
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() { coremain.Run() }
