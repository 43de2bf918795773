#!/usr/bin/env bash
# Debian packages of the `tessera` command, built with dpkg-deb from a staged tree (no
# cargo-deb: it would be a long compile on a small machine, and dpkg-deb is there already).
#
#   ci/package.sh build ARCH BINARY OUTDIR [HELP_BINARY]
#       stages BINARY (built for ARCH: armhf, arm64 or the host's) with the systemd units, the
#       sysusers entry, /etc/tessera/cluster.toml, the docs and a man page made from
#       `HELP_BINARY --help` (default BINARY; give a host build when BINARY is a cross build),
#       and writes OUTDIR/tessera_VERSION_ARCH.deb (its path is the last line printed).
#   ci/package.sh check DEB
#       lists the package (dpkg-deb -c), checks that every file the kit needs is there with the
#       right mode, that the binary is for the package's architecture, and runs lintian when it
#       is installed (errors fail, warnings are printed).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

die() {
  echo "package.sh: $*" >&2
  exit 1
}

# The ELF machine readelf reports for a Debian architecture.
elf_machine() {
  case "$1" in
    armhf) echo "ARM" ;;
    arm64) echo "AArch64" ;;
    amd64) echo "Advanced Micro Devices X86-64" ;;
    i386) echo "Intel 80386" ;;
    *) die "unknown architecture $1" ;;
  esac
}

# The strip of a Debian architecture's cross binutils ('' when there is none).
strip_for() {
  local host
  host=$(dpkg --print-architecture 2>/dev/null || echo "")
  local tool
  case "$1" in
    "$host") tool=strip ;;
    armhf) tool=arm-linux-gnueabihf-strip ;;
    arm64) tool=aarch64-linux-gnu-strip ;;
    *) tool="" ;;
  esac
  [ -n "$tool" ] && command -v "$tool" || true
}

# Roff-escapes plain text into a no-fill block.
roff_block() {
  echo ".nf"
  sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"
  echo ".fi"
}

# A man page from the command's own --help texts, so the two cannot disagree.
man_page() {
  local bin=$1 version=$2
  echo ".TH TESSERA 1 \"\" \"tessera $version\" \"User Commands\""
  echo ".SH NAME"
  echo "tessera \\- run a CNN across a cluster of small devices"
  echo ".SH SYNOPSIS"
  echo ".B tessera"
  echo "\\fICOMMAND\\fR [\\fIOPTIONS\\fR]"
  echo ".SH DESCRIPTION"
  "$bin" --help | roff_block
  local cmd
  for cmd in $("$bin" --help | awk '/^Commands:/ { on = 1; next } on && NF == 0 { on = 0 } on { print $1 }'); do
    [ "$cmd" = help ] && continue
    echo ".SH \"TESSERA ${cmd^^}\""
    "$bin" "$cmd" --help | roff_block
  done
  echo ".SH FILES"
  echo ".TP"
  echo ".I /etc/tessera/cluster.toml"
  echo "The cluster file every unit reads: the same file on every node."
  echo ".TP"
  echo ".I /etc/tessera/gateway.env, /etc/tessera/edge-N.env"
  echo "TESSERA_ARGS=... adds arguments to the gateway's or edge N's command line."
  echo ".TP"
  echo ".I /var/lib/tessera"
  echo "The units' working directory; the gateway writes results under results/."
  echo ".SH SEE ALSO"
  echo "/usr/share/doc/tessera/deploy.md,"
  echo ".BR systemctl (1),"
  echo ".BR journalctl (1)"
}

build() {
  local arch=$1 bin=$2 out=$3 help_bin=${4:-$2}
  [ -x "$bin" ] || die "no executable $bin"
  [ -x "$help_bin" ] || die "no executable $help_bin"
  local machine
  machine=$(readelf -h "$bin" | awk -F: '/Machine:/ { gsub(/^ +/, "", $2); print $2 }')
  [ "$machine" = "$(elf_machine "$arch")" ] || die "$bin is for $machine, not $arch"
  local version
  version=$(awk -F'"' '/^version = / { print $2; exit }' "$root/Cargo.toml")
  local stage="$out/stage-$arch"
  rm -rf "$stage"
  mkdir -p "$out"
  local doc="$stage/usr/share/doc/tessera"
  install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/usr/lib/systemd/system" \
    "$stage/usr/lib/sysusers.d" "$stage/etc/tessera" "$doc" "$stage/usr/share/man/man1"
  install -m 0755 "$bin" "$stage/usr/bin/tessera"
  local strip
  strip=$(strip_for "$arch")
  if [ -n "$strip" ]; then
    "$strip" --strip-unneeded "$stage/usr/bin/tessera"
  else
    echo "package.sh: no strip for $arch: the binary keeps its symbols" >&2
  fi
  install -m 0644 "$root"/packaging/systemd/*.service "$stage/usr/lib/systemd/system/"
  install -m 0644 "$root/packaging/sysusers.conf" "$stage/usr/lib/sysusers.d/tessera.conf"
  # The shipped cluster file has no usable key: every node refuses to start (and `tessera
  # check` says which line) until the one cluster file with a real key replaces it.
  sed -e 's/^key = .*/key = "REPLACE with the output of tessera keygen"/' \
    "$root/cluster.example.toml" >"$stage/etc/tessera/cluster.toml"
  chmod 0640 "$stage/etc/tessera/cluster.toml"
  install -m 0644 "$root/docs/deploy.md" "$root/cluster.example.toml" "$doc/"
  install -m 0644 "$root/packaging/debian/copyright" "$doc/copyright"
  printf 'tessera (%s-1) unstable; urgency=medium\n\n  * Built by ci/package.sh.\n\n -- Tessera maintainers <maintainers@tessera.invalid>  %s\n' \
    "$version" "$(date -R -d @"${SOURCE_DATE_EPOCH:-0}")" | gzip -9n >"$doc/changelog.Debian.gz"
  man_page "$help_bin" "$version" | gzip -9n >"$stage/usr/share/man/man1/tessera.1.gz"
  install -d "$stage/usr/share/lintian/overrides"
  install -m 0644 "$root/packaging/debian/lintian-overrides" \
    "$stage/usr/share/lintian/overrides/tessera"
  install -m 0755 "$root"/packaging/debian/{postinst,prerm,postrm} "$stage/DEBIAN/"
  echo "/etc/tessera/cluster.toml" >"$stage/DEBIAN/conffiles"
  # The newest glibc symbol version the binary needs is the libc6 it depends on.
  local glibc
  glibc=$(readelf --dyn-syms -W "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' |
    sort -V | tail -1)
  [ -n "$glibc" ] || die "$bin links no glibc symbol: not a Linux build?"
  local size
  size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
  cat >"$stage/DEBIAN/control" <<EOF
Package: tessera
Version: $version-1
Architecture: $arch
Maintainer: Tessera maintainers <maintainers@tessera.invalid>
Installed-Size: $size
Depends: libc6 (>= $glibc), libgcc-s1
Section: science
Priority: optional
Description: distributed CNN inference across a cluster of small devices
 Tessera runs one CNN (YOLOv2) across a cluster of Raspberry Pi class
 devices: the first layers split into independent tiles (Fused Tile
 Partitioning) shared by work stealing, the tail on a gateway.
 .
 This package holds the tessera command, the systemd units
 tessera-gateway.service and tessera-edge@.service, and the cluster file
 /etc/tessera/cluster.toml they read.
EOF
  local deb="$out/tessera_${version}-1_$arch.deb"
  dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
  rm -rf "$stage"
  echo "$deb"
}

# systemd-analyze verify on the units of the package extracted in $1 (edge as instance 1),
# with the host's targets beside them; anything it says (an unknown key, a bad value) fails.
verify_units() {
  local tree=$1 units="$1/usr/lib/systemd/system" t
  for t in sysinit basic multi-user network network-online sockets timers paths slices \
    local-fs swap shutdown; do
    [ -e "$units/$t.target" ] || cp "/usr/lib/systemd/system/$t.target" "$units/" 2>/dev/null
  done
  cp "$units/tessera-edge@.service" "$units/tessera-edge@1.service"
  local said
  said=$(cd "$tree" && systemd-analyze verify --man=no --root="$tree" \
    usr/lib/systemd/system/tessera-gateway.service \
    usr/lib/systemd/system/tessera-edge@1.service 2>&1)
  local rc=$?
  if [ "$rc" -ne 0 ] || [ -n "$said" ]; then
    echo "package.sh: systemd-analyze verify: $said" >&2
    return 1
  fi
  echo "package.sh: units verified by systemd-analyze"
}

check() {
  local deb=$1
  [ -f "$deb" ] || die "no package $deb"
  local arch
  arch=$(dpkg-deb -f "$deb" Architecture)
  local list
  list=$(dpkg-deb -c "$deb")
  echo "$list"
  local want=(
    "-rwxr-xr-x root/root ./usr/bin/tessera"
    "-rw-r--r-- root/root ./usr/lib/systemd/system/tessera-gateway.service"
    "-rw-r--r-- root/root ./usr/lib/systemd/system/tessera-edge@.service"
    "-rw-r--r-- root/root ./usr/lib/sysusers.d/tessera.conf"
    "-rw-r----- root/root ./etc/tessera/cluster.toml"
    "-rw-r--r-- root/root ./usr/share/man/man1/tessera.1.gz"
    "-rw-r--r-- root/root ./usr/share/doc/tessera/deploy.md"
    "-rw-r--r-- root/root ./usr/share/doc/tessera/copyright"
  )
  local bad=0 w mode owner path
  for w in "${want[@]}"; do
    read -r mode owner path <<<"$w"
    if ! awk -v m="$mode" -v o="$owner" -v p="$path" \
      '$1 == m && $2 == o && $6 == p { found = 1 } END { exit !found }' <<<"$list"; then
      echo "package.sh: $deb lacks $mode $owner $path" >&2
      bad=1
    fi
  done
  [ "$(dpkg-deb -I "$deb" conffiles)" = "/etc/tessera/cluster.toml" ] || {
    echo "package.sh: the cluster file is not a conffile" >&2
    bad=1
  }
  local tmp
  tmp=$(mktemp -d)
  dpkg-deb -x "$deb" "$tmp"
  local machine
  machine=$(readelf -h "$tmp/usr/bin/tessera" | awk -F: '/Machine:/ { gsub(/^ +/, "", $2); print $2 }')
  if [ "$machine" != "$(elf_machine "$arch")" ]; then
    echo "package.sh: $arch package holds a $machine binary" >&2
    bad=1
  fi
  grep -q '^Restart=on-failure' "$tmp"/usr/lib/systemd/system/tessera-gateway.service &&
    grep -q '^Restart=on-failure' "$tmp"/usr/lib/systemd/system/tessera-edge@.service &&
    grep -q '^User=tessera' "$tmp"/usr/lib/systemd/system/tessera-edge@.service || {
    echo "package.sh: units lack Restart=on-failure or User=tessera" >&2
    bad=1
  }
  if command -v systemd-analyze >/dev/null 2>&1 && [ -d /usr/lib/systemd/system ]; then
    verify_units "$tmp" || bad=1
  else
    echo "package.sh: systemd-analyze not installed: units not verified"
  fi
  rm -rf "$tmp"
  if command -v lintian >/dev/null 2>&1; then
    # Errors fail; warnings and notes are shown.
    # Not an upload to Debian: no bug to close.
    lintian --tag-display-limit 0 --suppress-tags initial-upload-closes-no-bugs "$deb" || bad=1
  else
    echo "package.sh: lintian not installed: skipped"
  fi
  [ "$bad" -eq 0 ] && echo "package.sh: $deb ok ($arch)"
  return "$bad"
}

usage="usage: ci/package.sh build ARCH BINARY OUTDIR [HELP_BINARY] | check DEB"
case "${1:-}" in
  build)
    [ $# -ge 4 ] && [ $# -le 5 ] || die "$usage"
    shift
    build "$@"
    ;;
  check)
    [ $# -eq 2 ] || die "$usage"
    check "$2"
    ;;
  *) die "$usage" ;;
esac
