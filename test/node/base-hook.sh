#!/usr/bin/env bash
# mmdebstrap --customize-hook for the local base images of test/node/images.sh (runs outside the chroot,
# on the finished root file system).
# Usage: base-hook.sh runtime|chromium ROOTFS
set -euo pipefail
kind=$1 r=$2

# Users the Dockerfiles name: node (1000, the public Node image's user) and nonroot (65532, distroless').
add_user() { # name uid home shell
  grep -q "^$1:" "$r/etc/passwd" 2>/dev/null || echo "$1:x:$2:$2:$1:$3:$4" >>"$r/etc/passwd"
  grep -q "^$1:" "$r/etc/group" 2>/dev/null || echo "$1:x:$2:" >>"$r/etc/group"
  mkdir -p "$r$3"; chown "$2:$2" "$r$3"
}
mkdir -p "$r/etc" "$r/tmp" "$r/root" "$r/etc/ssl/certs"
chmod 1777 "$r/tmp"
add_user root 0 /root /bin/sh
add_user node 1000 /home/node /bin/sh
add_user nonroot 65532 /home/nonroot /sbin/nologin
grep -q '^nobody:' "$r/etc/passwd" || echo 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' >>"$r/etc/passwd"
grep -q '^nogroup:' "$r/etc/group" || echo 'nogroup:x:65534:' >>"$r/etc/group"
# What update-ca-certificates writes (maintainer scripts do not run in the extract variant).
[[ -s $r/etc/ssl/certs/ca-certificates.crt ]] ||
  cat "$r"/usr/share/ca-certificates/mozilla/*.crt >"$r/etc/ssl/certs/ca-certificates.crt"
rm -rf "$r"/usr/share/man "$r"/usr/share/info "$r"/usr/share/lintian "$r"/var/cache/apt/*.bin "$r"/var/lib/apt/lists/*
find "$r/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true

case $kind in
  runtime)
    # busybox's applets where they belong (/bin/sh for RUN steps, cp for the plugin image, /usr/bin/env).
    while read -r applet; do
      [[ -e $r/$applet || -L $r/$applet ]] && continue
      mkdir -p "$r/$(dirname "$applet")"; ln -s /bin/busybox "$r/$applet"
    done < <("$r/bin/busybox" --list-full)
    # Pulled in by ca-certificates' dependencies, used by nothing here (rustls; Node bundles OpenSSL).
    rm -rf "$r"/usr/bin/openssl "$r"/usr/lib/ssl "$r"/etc/ssl/openssl.cnf "$r"/usr/share/perl5 "$r"/usr/share/debconf \
      "$r"/usr/lib/x86_64-linux-gnu/libssl.so* "$r"/usr/lib/x86_64-linux-gnu/libcrypto.so* \
      "$r"/usr/lib/x86_64-linux-gnu/engines-3 "$r"/usr/lib/x86_64-linux-gnu/ossl-modules
    ;;
  chromium)
    # Headless Chromium runs with --disable-gpu: Mesa's DRI drivers (and the LLVM they link, ~160 MB) and
    # GTK's icon theme are never loaded. test-images runs Chromium in this image, so a wrong cut fails there.
    rm -rf "$r"/usr/lib/x86_64-linux-gnu/dri "$r"/usr/lib/x86_64-linux-gnu/libLLVM-* \
      "$r"/usr/lib/x86_64-linux-gnu/libz3.so* "$r"/usr/share/icons/Adwaita
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$r/usr/bin/npm"
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$r/usr/bin/npx"
    "$r/usr/bin/node" --version >/dev/null
    ;;
  *) echo "base-hook: unknown kind $kind" >&2; exit 2 ;;
esac
