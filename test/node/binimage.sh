#!/usr/bin/env bash
# Packs static binaries into a one-layer image archive (docker-archive, what `ctr images import` and
# `docker load` read), without any container engine or registry.
#
#   binimage.sh NAME:TAG ARCHIVE ENTRYPOINT BINARY...
#
# Each BINARY lands in /usr/local/bin/; ENTRYPOINT is the first element of the image's entrypoint (e.g.
# /usr/local/bin/pause). The image runs as uid 65532 (non-root) unless USER_ID is set.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: binimage.sh NAME:TAG ARCHIVE ENTRYPOINT BINARY..." >&2; exit 2; }
name="$1" archive="$2" entry="$3"; shift 3
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/usr/local/bin" "$work/root/tmp" "$work/out"
chmod 1777 "$work/root/tmp"
for b in "$@"; do install -m 0755 "$b" "$work/root/usr/local/bin/"; done
# Reproducible layer: fixed owner and mtime, sorted names.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='2000-01-01 00:00Z' \
  -C "$work/root" -cf "$work/layer.tar" .
layer_sha="$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
mkdir -p "$work/out/$layer_sha"
mv "$work/layer.tar" "$work/out/$layer_sha/layer.tar"
cat >"$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","created":"2000-01-01T00:00:00Z",
 "config":{"Entrypoint":["$entry"],"User":"${USER_ID:-65532}","Env":["PATH=/usr/local/bin"]},
 "rootfs":{"type":"layers","diff_ids":["sha256:$layer_sha"]}}
JSON
config_sha="$(sha256sum "$work/config.json" | cut -d' ' -f1)"
mv "$work/config.json" "$work/out/$config_sha.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' "$config_sha" "$name" "$layer_sha" \
  >"$work/out/manifest.json"
mkdir -p "$(dirname "$archive")"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='2000-01-01 00:00Z' -C "$work/out" -cf "$archive.tmp" .
mv "$archive.tmp" "$archive"
