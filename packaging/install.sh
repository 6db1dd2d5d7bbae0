#!/bin/sh
# Installs gpu-bridge-host from the folder this script is in (a `make dist` tarball, unpacked):
#   sudo ./install.sh                          into /usr/local, settings in /etc/default
#   PREFIX=/usr SYSCONFDIR=/etc DESTDIR=/tmp/root ./install.sh     for packaging
# SYSTEM_USER=name runs the unit as that existing system user instead of a dynamic one (the
# Debian package's postinst creates "gpu-bridge"). The environment file is kept if it exists:
# it holds the operator's settings and token. `make install` and `make deb` both run this.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
DESTDIR=${DESTDIR:-}
SYSTEM_USER=${SYSTEM_USER:-}
case "$SYSTEM_USER" in
  "" | [a-z_]*) ;;
  *) echo "install.sh: SYSTEM_USER must be a user name, got '$SYSTEM_USER'" >&2; exit 2 ;;
esac

install -D -m 0755 "$here/gpu-bridge-host" "$DESTDIR$PREFIX/bin/gpu-bridge-host"
mkdir -p "$DESTDIR$PREFIX/lib/systemd/system"
# The unit in the tarball is written for /usr/local and /etc; point it at this PREFIX.
identity="DynamicUser=yes"
[ -z "$SYSTEM_USER" ] || identity="User=$SYSTEM_USER\nGroup=$SYSTEM_USER"
sed -e "s|/usr/local/|$PREFIX/|g" -e "s|/etc/default/|$SYSCONFDIR/default/|g" -e "s|^DynamicUser=yes\$|$identity|" \
  "$here/gpu-bridge-host.service" > "$DESTDIR$PREFIX/lib/systemd/system/gpu-bridge-host.service"
chmod 0644 "$DESTDIR$PREFIX/lib/systemd/system/gpu-bridge-host.service"
if [ -e "$DESTDIR$SYSCONFDIR/default/gpu-bridge-host" ]; then
  echo "kept $DESTDIR$SYSCONFDIR/default/gpu-bridge-host"
else
  install -D -m 0640 "$here/gpu-bridge-host.env" "$DESTDIR$SYSCONFDIR/default/gpu-bridge-host"
fi
install -D -m 0644 "$here/README.md" "$DESTDIR$PREFIX/share/doc/gpu-bridge-host/README.md"
# The man page, and each shell's completion where that shell looks under PREFIX (zsh: Debian's
# vendor folder for /usr, the site folder in every zsh's default $fpath otherwise).
install -D -m 0644 "$here/gpu-bridge-host.1.gz" "$DESTDIR$PREFIX/share/man/man1/gpu-bridge-host.1.gz"
install -D -m 0644 "$here/completions/gpu-bridge-host.bash" "$DESTDIR$PREFIX/share/bash-completion/completions/gpu-bridge-host"
zsh_dir=site-functions
[ "$PREFIX" != /usr ] || zsh_dir=vendor-completions
install -D -m 0644 "$here/completions/_gpu-bridge-host" "$DESTDIR$PREFIX/share/zsh/$zsh_dir/_gpu-bridge-host"
install -D -m 0644 "$here/completions/gpu-bridge-host.fish" "$DESTDIR$PREFIX/share/fish/vendor_completions.d/gpu-bridge-host.fish"
echo "installed gpu-bridge-host into $DESTDIR$PREFIX"
echo "next: edit $SYSCONFDIR/default/gpu-bridge-host, then systemctl daemon-reload && systemctl enable --now gpu-bridge-host"
