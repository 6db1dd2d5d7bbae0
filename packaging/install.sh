#!/bin/sh
# Installs gpu-bridge-host from the folder this script is in (a `make dist` tarball, unpacked):
#   sudo ./install.sh                          into /usr/local, settings in /etc/default
#   PREFIX=/usr SYSCONFDIR=/etc DESTDIR=/tmp/root ./install.sh     for packaging
# The environment file is kept if it exists: it holds the operator's settings and token.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
DESTDIR=${DESTDIR:-}

install -D -m 0755 "$here/gpu-bridge-host" "$DESTDIR$PREFIX/bin/gpu-bridge-host"
mkdir -p "$DESTDIR$PREFIX/lib/systemd/system"
# The unit in the tarball is written for /usr/local and /etc; point it at this PREFIX.
sed -e "s|/usr/local/|$PREFIX/|g" -e "s|/etc/default/|$SYSCONFDIR/default/|g" \
  "$here/gpu-bridge-host.service" > "$DESTDIR$PREFIX/lib/systemd/system/gpu-bridge-host.service"
chmod 0644 "$DESTDIR$PREFIX/lib/systemd/system/gpu-bridge-host.service"
if [ -e "$DESTDIR$SYSCONFDIR/default/gpu-bridge-host" ]; then
  echo "kept $DESTDIR$SYSCONFDIR/default/gpu-bridge-host"
else
  install -D -m 0640 "$here/gpu-bridge-host.env" "$DESTDIR$SYSCONFDIR/default/gpu-bridge-host"
fi
install -D -m 0644 "$here/README.md" "$DESTDIR$PREFIX/share/doc/gpu-bridge-host/README.md"
echo "installed gpu-bridge-host into $DESTDIR$PREFIX"
echo "next: edit $SYSCONFDIR/default/gpu-bridge-host, then systemctl daemon-reload && systemctl enable --now gpu-bridge-host"
