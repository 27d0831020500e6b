#!/bin/sh
# Lays out what every Outrigger image holds besides its binary, in OUT:
#   OUT/bin/       the five static binaries, copied from BIN_DIR
#   OUT/rootfs/    root-owned files: /etc/passwd, /etc/group (user nonroot,
#                  65532), /etc/nsswitch.conf and the CA bundle
#   OUT/writable/  folders the images copy with --chown=65532:65532: /tmp
#                  (1777), the socket folder /tmp/dapr-components-sockets,
#                  HOME /home/nonroot and /data (outrigger-local's SQLite file)
# Used by docker/Dockerfile's build stage and by scripts/containers.sh, so an
# image built either way has the same layout.
#
# Usage: docker/rootfs.sh OUT BIN_DIR [CA_BUNDLE]
set -eu
OUT="$1"
BIN_DIR="$2"
CA_BUNDLE="${3:-/etc/ssl/certs/ca-certificates.crt}"
BINARIES="outrigger outrigger-local outrigger-postgres outrigger-nats outrigger-servicebus"

fail() { echo "docker/rootfs.sh: $*" >&2; exit 1; }
[ -s "$CA_BUNDLE" ] || fail "no CA bundle at $CA_BUNDLE (install ca-certificates)"

rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/rootfs/etc/ssl/certs" "$OUT/writable"
for bin in $BINARIES; do
  [ -x "$BIN_DIR/$bin" ] || fail "missing binary $BIN_DIR/$bin (build all five first)"
  cp "$BIN_DIR/$bin" "$OUT/bin/$bin"
done
cp "$CA_BUNDLE" "$OUT/rootfs/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$OUT/rootfs/etc/ssl/certs/ca-certificates.crt"

# A numeric user works without these; they let tools (and glibc) name it.
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
  >"$OUT/rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$OUT/rootfs/etc/group"
# Static glibc resolves names itself (files, then DNS); say so explicitly.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$OUT/rootfs/etc/nsswitch.conf"

mkdir -p "$OUT/writable/tmp/dapr-components-sockets" "$OUT/writable/home/nonroot" "$OUT/writable/data"
chmod 1777 "$OUT/writable/tmp"
chmod 0775 "$OUT/writable/tmp/dapr-components-sockets"
chmod 0755 "$OUT/writable/home/nonroot"
chmod 0750 "$OUT/writable/data"
