#!/bin/sh
# Install loa as system services on a Debian box (run as root from the source tree).
#   packaging/install.sh [PATH/TO/loa]      default: target/release/loa
# Installs the binary, the systemd units, the sysusers/tmpfiles snippets, creates the loa user
# and the directories, and reloads systemd. It enables nothing: see docs/operations.md.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-"$here/../target/release/loa"}
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
[ -x "$bin" ] || { echo "install.sh: no executable at $bin (cargo build --release, or pass its path)" >&2; exit 1; }

install -m 0755 "$bin" /usr/bin/loa.new && mv -f /usr/bin/loa.new /usr/bin/loa
install -m 0644 "$here/systemd/loa-station@.service" "$here/systemd/loa-collector.service" /etc/systemd/system/
install -D -m 0644 "$here/sysusers.d/loa.conf" /usr/lib/sysusers.d/loa.conf
install -D -m 0644 "$here/tmpfiles.d/loa.conf" /usr/lib/tmpfiles.d/loa.conf
install -D -m 0644 "$here/../docs/operations.md" /usr/share/doc/loa/operations.md
systemd-sysusers /usr/lib/sysusers.d/loa.conf
systemd-tmpfiles --create /usr/lib/tmpfiles.d/loa.conf
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
else
  echo "install.sh: systemd is not running here (a container or chroot?): skipped daemon-reload" >&2
fi
echo "installed /usr/bin/loa ($(/usr/bin/loa --version)); units loa-station@.service, loa-collector.service"
