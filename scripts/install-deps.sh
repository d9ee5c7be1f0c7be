#!/usr/bin/env bash
# Install what a fresh Debian machine lacks for contivpy: etcd, Open vSwitch, Docker, network tools,
# busybox (test container image) and the Python package with its test extras. Idempotent and quiet
# when everything is already there. Needs root (apt-get).
set -euo pipefail
pkgs=(etcd-server etcd-client openvswitch-switch docker.io iproute2 ethtool busybox-static
      iputils-ping tcpdump iperf3 procps make)
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
# The Python package: (re)install in editable mode unless the importable contivpy already is this checkout
# (a CI clone in another folder must not run against an older checkout's code).
if ! python3 -I - "$here" <<'PY' 2>/dev/null
import os, sys
import contivpy, aetcd, os_ken, pyroute2, aiohttp, pydantic, pytest_asyncio, dns  # noqa: F401
here = os.path.realpath(sys.argv[1])
sys.exit(0 if os.path.realpath(os.path.dirname(os.path.dirname(contivpy.__file__))) == here else 1)
PY
then
  python3 -m pip install -q -e "$here[test]" --config-settings editable_mode=compat
fi
