#!/bin/sh
# Before removal (deb: remove; rpm: 0, not an upgrade): stop and disable the
# service. The vigil user and /var/lib/vigil (the store) stay.
set -e

case "$1" in
  remove|0) ;;
  *) exit 0 ;;
esac

if [ -d /run/systemd/system ]; then
  systemctl disable --now vigil.service >/dev/null 2>&1 || true
fi
