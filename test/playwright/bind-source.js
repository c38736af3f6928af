'use strict';
// Preload (`node -r ./bind-source.js`) that makes every outgoing TCP connection to a loopback address
// leave from SOURCE_IP (e.g. 127.0.0.5), so that one machine can play many pods. The official client
// has no source-address option; this sets `localAddress` at the socket layer instead.
const net = require('net');
const source = process.env.SOURCE_IP;
if (source) {
  const original = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function connect(...args) {
    // net.createConnection passes its already-normalized [options, callback] array.
    const opts = Array.isArray(args[0]) ? args[0][0] : args[0];
    if (opts && typeof opts === 'object' && !opts.path && !opts.localAddress) {
      const host = opts.host || 'localhost';
      if (host === 'localhost' || host.startsWith('127.')) opts.localAddress = source;
    }
    return original.apply(this, args);
  };
}
