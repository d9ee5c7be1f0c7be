#!/usr/bin/env bash
# Install what a fresh Debian machine lacks for contivpy: etcd, Open vSwitch, Docker, podman, network tools,
# iptables (host access NAT), busybox (test container image), python3-venv, then the project's virtual
# environment `.venv` (made with Debian's own /usr/bin/python3, never with whatever python3 comes
# first on PATH) holding contivpy in editable mode with its test extras. Debian's python3 refuses
# system-wide pip installs (PEP 668), so nothing is installed outside .venv. Idempotent and quiet when
# everything is already there. Needs root.
set -euo pipefail
pkgs=(etcd-server etcd-client openvswitch-switch docker.io iproute2 ethtool busybox-static
      iputils-ping tcpdump iperf3 procps make python3 python3-venv iptables
      podman containernetworking-plugins  # podman: the CNI tests with a real runtime (docs/cni.md)
      gobgpd bird2)  # gobgpd: BGP in vlan routing mode (docs/deployment.md); bird2: the test bed's ToR peer
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
here=$(cd "$(dirname "$0")/.." && pwd)
venv="$here/.venv"
base=/usr/bin/python3
[ -x "$base" ] || base=$(command -v python3)
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv with $base"
  "$base" -m venv "$venv"
fi
# (Re)install in editable mode when pyproject.toml (the dependency list), the launchers in bin/ (pip
# copies them into the venv) or the checkout changed since the last install, or contivpy does not
# import: a stamp in the venv records what was installed.
stamp="$venv/.contivpy-installed"
want="$here $(cat "$here/pyproject.toml" "$here"/bin/* | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$venv/bin/python" -I -c 'import contivpy' 2>/dev/null; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$here[test]" \
    --config-settings editable_mode=compat
  echo "$want" > "$stamp"
fi
# The installed launchers start the venv's interpreter directly (#! line), not through sh.
sh "$here/scripts/pin-launchers.sh" "$venv"
# Byte code of the checkout, as pip writes it for a regular install: the editable install has none,
# and with PYTHONDONTWRITEBYTECODE set every netctl call (and daemon start) would compile its
# sources again (netctl network ls: about 14 ms of CPU). Only changed files are compiled.
"$venv/bin/python" -m compileall -q -j 0 "$here/contivpy" >/dev/null
