#!/bin/sh
# Builds the Debian package of one architecture from a staged tree (the one `make dist` tars):
#   packaging/deb/build.sh DEB_ARCH STAGE_DIR OUT.deb
# The package's files are what the stage's install.sh installs with PREFIX=/usr into an empty
# root, so `make install` and the package lay files out the same way. Then the control files,
# and dpkg-deb --root-owner-group: every file root's, with no fakeroot needed.
# VERSION and DEB_MAINTAINER come from the Makefile; SOURCE_DATE_EPOCH dates the changelog.
set -eu
umask 022
arch=$1 stage=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
: "${VERSION:?VERSION is not set}" "${DEB_MAINTAINER:?DEB_MAINTAINER is not set}"
case "$arch" in
  amd64) machine="X86-64" ;;
  arm64) machine="AArch64" ;;
  *) echo "build.sh: DEB_ARCH must be amd64 or arm64, got '$arch'" >&2; exit 2 ;;
esac
command -v dpkg-deb >/dev/null || { echo "build.sh: dpkg-deb not found (apt-get install dpkg)" >&2; exit 1; }

# The binary must be the architecture's: a stage with the wrong one would install and not run.
if ! readelf -h "$stage/gpu-bridge-host" 2>/dev/null | grep -q "Machine: *.*$machine"; then
  echo "build.sh: $stage/gpu-bridge-host is not an $arch ($machine) binary" >&2
  exit 1
fi

work=build/deb-$arch
root=$work/root
rm -rf "$work"
mkdir -p "$root/DEBIAN"
PREFIX=/usr SYSCONFDIR=/etc DESTDIR=$root SYSTEM_USER=gpu-bridge "$stage/install.sh" >/dev/null

doc=$root/usr/share/doc/gpu-bridge-host
date=$(date -u -R -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}")
{
  echo "gpu-bridge-host ($VERSION) unstable; urgency=medium"
  echo
  echo "  * Release $VERSION, built from the gpu-bridge-host repository (make deb)."
  echo
  echo " -- $DEB_MAINTAINER  $date"
} | gzip -9n > "$doc/changelog.gz"
install -m 0644 "$here/copyright" "$doc/copyright"
install -D -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/gpu-bridge-host"

# glibc is the binary's only dependency (libc, libm, libdl, libpthread); the symbol versions it
# asks for give the least version. adduser makes the system user.
glibc=$(readelf -V -W "$stage/gpu-bridge-host" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -Vu | tail -1)
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: gpu-bridge-host
Version: $VERSION
Architecture: $arch
Maintainer: $DEB_MAINTAINER
Installed-Size: $size
Depends: libc6 (>= $glibc), adduser
Recommends: bash-completion
Section: admin
Priority: optional
Description: host-side GPU bridge for the Cohesix operating system
 Mirrors this host's NVIDIA GPUs (discrete or Jetson) into the /gpu namespace
 of a Cohesix VM over its TCP console, grants leases on them, runs jobs under
 those leases, forwards telemetry and serves a local HTTP API on loopback.
 .
 The gpu-bridge-host systemd unit runs "gpu-bridge-host serve" as the system
 user gpu-bridge, with its state in /var/lib/gpu-bridge-host and its settings
 in /etc/default/gpu-bridge-host.
CONTROL
echo /etc/default/gpu-bridge-host > "$root/DEBIAN/conffiles"
for script in postinst prerm postrm; do
  install -m 0755 "$here/$script" "$root/DEBIAN/$script"
done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

mkdir -p "$(dirname "$out")"
dpkg-deb --build --root-owner-group -Zxz "$root" "$out" >/dev/null
echo "wrote $out"
