#!/bin/sh
# After install or upgrade (deb: configure; rpm: 1 or 2): the vigil system
# user, its state directory, CAP_NET_RAW on the binary, and systemd told.
set -e

case "$1" in
  configure|1|2) ;;
  *) exit 0 ;;
esac

if ! getent passwd vigil >/dev/null; then
  useradd --system --user-group --home-dir /var/lib/vigil --no-create-home \
    --shell /usr/sbin/nologin --comment "vigil health-probe agent" vigil
fi
install -d -o vigil -g vigil -m 0750 /var/lib/vigil

# ICMP checks and traceroute from a shell (`vigil once`) without root. The
# service gets the capability from its unit instead (AmbientCapabilities):
# NoNewPrivileges there ignores file capabilities.
if command -v setcap >/dev/null 2>&1; then
  setcap cap_net_raw+ep /usr/bin/vigil || echo "vigil: setcap cap_net_raw failed; ICMP checks outside the service need root or net.ipv4.ping_group_range" >&2
else
  echo "vigil: setcap not found (libcap2-bin); ICMP checks outside the service need root or net.ipv4.ping_group_range" >&2
fi

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  # An upgrade restarts a running agent; a new install is left for
  # `systemctl enable --now vigil` once /etc/vigil/vigil.yml is edited.
  systemctl try-restart vigil.service >/dev/null 2>&1 || true
fi
