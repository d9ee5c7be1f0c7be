"""netplugin configuration: flags (HEAD and legacy spellings), ``CONTIV_NETPLUGIN_*`` env, validation.

Precedence: command line > environment > default. Every validation failure raises ``ConfigError`` whose
message is printed as-is and makes the process exit with code 22 (EINVAL), like the original.

Accepted spellings (docs/original.md §5.1):
- HEAD: ``--etcd-endpoints/--etcd``, ``--consul-endpoints/--consul``, ``--mode/--plugin-mode/--cluster-mode``,
  ``--netmode/--network-mode``, ``--fwdmode/--forward-mode``, ``--host/--host-label``, ``--vtep-ip``,
  ``--ctrl-ip``, ``--vlan-uplinks/--vlan-if`` (repeatable, comma lists), ``--vxlan-port``, ``--log-level``,
  ``--use-json-log/--json-log``, ``--use-syslog/--syslog``, ``--syslog-url`` (as netmaster's:
  common/logfmt.py; env ``CONTIV_NETPLUGIN_USE_JSON_LOG``, ``_USE_SYSLOG``, ``_SYSLOG_URL``).
- legacy 1.1.x: ``-cluster-store etcd://h:p``, ``-plugin-mode``, ``-vlan-if``, ``-host-label``, ``-vtep-ip``,
  ``-ctrl-ip``, ``-debug``, ``-vxlan-port``, ``-json-log``, ``-syslog kernel|proto://ip:port``, ``-version``; ``--version``/``-v`` print the version
  block (``Version:``/``GitCommit:``/``BuildTime:``, as netmaster) and exit 0.
- contivpy additions: ``--ovsdb ADDRESS`` (unix:PATH | tcp:IP:PORT), ``--ovs-datapath system|netdev``,
  ``--plugin-socket``, ``--cni-socket`` (the CNI server's unix socket, default
  ``/run/contiv/contiv-cni.sock``, served in every mode: docs/cni.md), ``--k8s-config`` (contiv.json
  naming the Kubernetes API the CNI server reads pod labels from, if the file exists), ``--docker-host`` (``none``: no engine to keep networks in sync with),
  ``--mtu N|auto`` (default 1450 on every container port, like 1.1.x; ``auto`` like HEAD: the
  lowest host MTU on vlan-bridge ports, 50 less on vxlan-bridge ports),
  ``--ovs-ctl PATH`` (the unixctl socket of the agent's ovs-vswitchd for ``ofproto/trace``; by default
  found next to the ``--ovsdb`` socket: netplugin/ovsappctl.py),
  ``--debug-listen HOST:PORT`` (the debug REST, which can create and delete endpoints: 127.0.0.1:9090 by
  default, unlike the original's :9090 on every interface; docs/security.md),
  ``--cleanup`` (clean uninstall of host access: delete ``contivh0`` and the ``contivpy``-tagged iptables
  rules, then exit; docs/deployment.md),
  ``--etcd-tls-ca-file``/``--etcd-tls-cert-file``/``--etcd-tls-key-file`` (``CONTIV_NETPLUGIN_ETCD_TLS_*``;
  https:// endpoints). Every ``--etcd-endpoints`` member is used (``store_url`` is the whole list).

Decision (docs/decisions.md): the original exits when ``--netmode vlan`` has no ``--vlan-if``. The seed
command line ``netplugin --etcd-endpoints ... --mode docker --netmode vlan --fwdmode bridge`` has none, so
contivpy starts anyway, logs a warning and builds the VLAN bridge without an uplink (VLAN networks then only
connect endpoints of the same host). ``--netmode vxlan --fwdmode bridge`` is rejected like HEAD does.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from dataclasses import dataclass, field

from contivpy.common.httpserve import split_hostport
from contivpy.common.logfmt import DEFAULT_SYSLOG_URL, parse_level

EXIT_CONFIG = 22
MODES = ("docker", "kubernetes", "swarm-mode", "test")
NETMODES = ("vlan", "vxlan")
FWDMODES = ("bridge", "routing")


class ConfigError(Exception):
    """Bad configuration: message for the user, exit code 22."""


class ShowVersion(Exception):
    """``--version``/``-version``/``-v`` was given: print the version block, exit 0."""


@dataclass
class Config:
    etcd_endpoints: list[str] = field(default_factory=lambda: ["http://127.0.0.1:2379"])
    consul_endpoints: list[str] = field(default_factory=list)
    mode: str = ""
    netmode: str = ""
    fwdmode: str = ""
    host: str = ""
    vtep_ip: str = ""
    ctrl_ip: str = ""
    vlan_uplinks: list[str] = field(default_factory=list)
    vxlan_port: int = 4789
    log_level: str = "INFO"
    json_log: bool = False  # --use-json-log: one JSON object per line (common/logfmt.py)
    syslog: bool = False  # --use-syslog: log lines go to syslog_url instead of stderr
    syslog_url: str = DEFAULT_SYSLOG_URL
    ovsdb: str = "unix:/var/run/openvswitch/db.sock"
    ovs_datapath: str = "system"
    plugin_socket: str = "/run/docker/plugins/netplugin.sock"
    cni_socket: str = "/run/contiv/contiv-cni.sock"
    gobgp_dir: str = "/run/contivpy/gobgp"  # gobgpd's API socket, PID file and log (vlan routing mode)
    k8s_config: str = "/var/contiv/config/contiv.json"
    docker_host: str = "unix:///var/run/docker.sock"
    mtu: int | str = 1450
    ovs_ctl: str = ""  # ovs-vswitchd's unixctl socket ("" = next to the OVSDB socket: ovsappctl.py)
    debug_listen: str = "127.0.0.1:9090"  # loopback only unless --debug-listen says otherwise
    cleanup: bool = False  # --cleanup: remove host access (contivh0, nat rules) and exit
    warnings: list[str] = field(default_factory=list)

    etcd_ca_file: str = ""
    etcd_cert_file: str = ""
    etcd_key_file: str = ""

    @property
    def store_url(self) -> str:
        """Every etcd endpoint, comma separated (the store fails over between them)."""
        return ",".join(self.etcd_endpoints)

    @property
    def store_tls(self) -> dict[str, str]:
        """Keyword arguments of ``open_store`` for etcd over TLS."""
        return {
            "ca_file": self.etcd_ca_file,
            "cert_file": self.etcd_cert_file,
            "key_file": self.etcd_key_file,
        }


def _default_host_ip() -> str:
    """IP of the hostname if it resolves locally, else the first non-loopback IPv4 (original behaviour)."""
    try:
        ip = socket.gethostbyname(socket.gethostname())
        if not ip.startswith("127."):
            return ip
    except OSError:
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="netplugin", allow_abbrev=False, description="Contiv per-host network agent"
    )
    a = p.add_argument
    a("--etcd-endpoints", "--etcd", dest="etcd")
    a("--etcd-tls-ca-file", dest="etcd_ca")
    a("--etcd-tls-cert-file", dest="etcd_cert")
    a("--etcd-tls-key-file", dest="etcd_key")
    a("-cluster-store", "--cluster-store", dest="cluster_store")
    a("--consul-endpoints", "--consul", dest="consul")
    a("--mode", "--plugin-mode", "--cluster-mode", "-plugin-mode", dest="mode")
    a("--netmode", "--network-mode", dest="netmode")
    a("--fwdmode", "--forward-mode", dest="fwdmode")
    a("--host", "--host-label", "-host-label", dest="host")
    a("--vtep-ip", "-vtep-ip", dest="vtep_ip")
    a("--ctrl-ip", "-ctrl-ip", dest="ctrl_ip")
    a("--vlan-uplinks", "--vlan-if", "-vlan-if", dest="vlan_if", action="append")
    a("--vxlan-port", "-vxlan-port", dest="vxlan_port")
    a("--log-level", dest="log_level")
    a("--use-json-log", "--json-log", "-json-log", dest="json_log", action="store_true", default=None)
    a("--use-syslog", "--syslog", dest="syslog", action="store_true", default=None)
    a("-syslog", dest="syslog_legacy")  # 1.1.x: -syslog kernel | proto://ip:port
    a("--syslog-url", dest="syslog_url")
    a("-debug", "--debug", dest="debug", action="store_true", default=None)
    a("--ovsdb", dest="ovsdb")
    a("--ovs-datapath", dest="ovs_datapath")
    a("--plugin-socket", dest="plugin_socket")
    a("--cni-socket", dest="cni_socket")
    a("--gobgp-dir", dest="gobgp_dir")
    a("--k8s-config", dest="k8s_config")
    a("--docker-host", dest="docker_host")
    a("--mtu", dest="mtu")
    a("--debug-listen", dest="debug_listen")
    a("--ovs-ctl", dest="ovs_ctl")
    a("--cleanup", action="store_true", help="remove contivh0 and contivpy's iptables rules, then exit")
    a("--version", "-version", "-v", action="store_true", help="print the version and exit")
    return p


_BOOL_FLAGS = ("--use-json-log", "--json-log", "-json-log", "--use-syslog", "--syslog")


def _normalise(argv: list[str]) -> list[str]:
    """``--use-json-log=true`` / ``=false`` for the boolean log flags, as netmaster accepts them."""
    out = []
    for a in argv:
        name, eq, val = a.partition("=")
        if eq and name in _BOOL_FLAGS:
            if val.lower() not in ("true", "1", "t"):
                continue
            a = name
        out.append(a)
    return out


def _env_bool(v: str) -> bool:
    return v.strip().lower() in ("1", "t", "true", "yes")


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def parse(argv: list[str] | None = None, env: dict[str, str] | None = None) -> Config:
    env = dict(os.environ if env is None else env)
    p = _parser()
    try:
        ns = p.parse_args(_normalise(list(sys.argv[1:] if argv is None else argv)))
    except SystemExit as e:  # argparse already printed its usage message
        raise ConfigError("") from e
    if ns.version:
        raise ShowVersion()

    def pick(flag, name, default=None):
        if flag is not None:
            return flag
        return env.get(f"CONTIV_NETPLUGIN_{name}", default)

    cfg = Config()
    if ns.cleanup:  # uninstall step: needs only the OVSDB address
        cfg.cleanup = True
        cfg.ovsdb = pick(ns.ovsdb, "OVSDB", cfg.ovsdb)
        return cfg
    etcd = _split([ns.etcd] if ns.etcd else None) or _split(
        [env["CONTIV_NETPLUGIN_ETCD_ENDPOINTS"]] if env.get("CONTIV_NETPLUGIN_ETCD_ENDPOINTS") else None
    )
    consul = _split([ns.consul] if ns.consul else None) or _split(
        [env["CONTIV_NETPLUGIN_CONSUL_ENDPOINTS"]] if env.get("CONTIV_NETPLUGIN_CONSUL_ENDPOINTS") else None
    )
    if ns.cluster_store:
        scheme, _, rest = ns.cluster_store.partition("://")
        if scheme == "etcd":
            etcd = [f"http://{rest}"]
        elif scheme == "consul":
            consul = [f"http://{rest}"]
        else:
            raise ConfigError(f"invalid cluster-store {ns.cluster_store}")
    if etcd and consul:
        raise ConfigError("ambiguous netplugin db endpoints: both etcd and consul are configured")
    if consul:
        raise ConfigError("consul is not supported by contivpy; use --etcd-endpoints")
    if etcd:
        cfg.etcd_endpoints = etcd
    if len({e.split("://")[0] if "://" in e else "http" for e in cfg.etcd_endpoints}) > 1:
        raise ConfigError(f"invalid etcd endpoints {','.join(cfg.etcd_endpoints)}: mixed schemes")
    cfg.etcd_ca_file = pick(ns.etcd_ca, "ETCD_TLS_CA_FILE", "") or ""
    cfg.etcd_cert_file = pick(ns.etcd_cert, "ETCD_TLS_CERT_FILE", "") or ""
    cfg.etcd_key_file = pick(ns.etcd_key, "ETCD_TLS_KEY_FILE", "") or ""
    if bool(cfg.etcd_cert_file) != bool(cfg.etcd_key_file):
        raise ConfigError("--etcd-tls-cert-file and --etcd-tls-key-file must be given together")
    if (cfg.etcd_ca_file or cfg.etcd_cert_file) and not cfg.etcd_endpoints[0].startswith("https://"):
        raise ConfigError("etcd TLS files need https:// etcd endpoints")
    for path in (cfg.etcd_ca_file, cfg.etcd_cert_file, cfg.etcd_key_file):
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"cannot read etcd TLS file {path}")
    from contivpy.common.kv import etcd_client_problem

    if problem := etcd_client_problem(env):
        raise ConfigError(problem)

    cfg.mode = (pick(ns.mode, "MODE", "") or "").strip()
    if not cfg.mode:
        raise ConfigError("netplugin mode is not set")
    if cfg.mode not in MODES:
        raise ConfigError(f"unknown netplugin mode: {cfg.mode}")
    cfg.netmode = (pick(ns.netmode, "NET_MODE", "") or "").strip()
    if not cfg.netmode:
        raise ConfigError("netplugin network mode is not set")
    if cfg.netmode not in NETMODES:
        raise ConfigError(f"invalid netplugin network mode: [{cfg.netmode}]")
    cfg.fwdmode = (pick(ns.fwdmode, "FORWARD_MODE", "") or "").strip()
    if not cfg.fwdmode:
        raise ConfigError("netplugin forwarding mode is not set")
    if cfg.fwdmode not in FWDMODES:
        raise ConfigError(f"invalid netplugin forwarding mode: [{cfg.fwdmode}]")
    if cfg.netmode == "vxlan" and cfg.fwdmode == "bridge":
        raise ConfigError("invalid netplugin forwarding mode: [bridge] (vxlan network mode requires routing)")

    cfg.host = pick(ns.host, "HOST", "") or socket.gethostname()
    cfg.ctrl_ip = pick(ns.ctrl_ip, "CONTROL_IP", "") or _default_host_ip()
    cfg.vtep_ip = pick(ns.vtep_ip, "VTEP_IP", "") or cfg.ctrl_ip
    for what, ip in (("vtep-ip", cfg.vtep_ip), ("ctrl-ip", cfg.ctrl_ip)):
        try:
            ipaddress.IPv4Address(ip)
        except ValueError as e:
            raise ConfigError(f"invalid {what} {ip!r}: {e}") from e
    cfg.vlan_uplinks = _split(ns.vlan_if) or _split(
        [env["CONTIV_NETPLUGIN_VLAN_UPLINKS"]] if env.get("CONTIV_NETPLUGIN_VLAN_UPLINKS") else None
    )
    if cfg.netmode == "vlan" and not cfg.vlan_uplinks:
        cfg.warnings.append("no --vlan-if given in vlan mode: VLAN networks will not reach other hosts")
    try:
        cfg.vxlan_port = int(pick(ns.vxlan_port, "VXLAN_PORT", 4789))
        if not 0 < cfg.vxlan_port < 65536:
            raise ValueError("out of range")
    except ValueError as e:
        raise ConfigError(f"invalid vxlan-port: {e}") from e
    try:  # netmaster's levels and message (common/logfmt.py)
        cfg.log_level = parse_level(pick(ns.log_level, "LOG_LEVEL", "INFO"), bool(ns.debug))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    cfg.json_log = bool(ns.json_log) or _env_bool(env.get("CONTIV_NETPLUGIN_USE_JSON_LOG", ""))
    cfg.syslog = bool(ns.syslog) or _env_bool(env.get("CONTIV_NETPLUGIN_USE_SYSLOG", ""))
    cfg.syslog_url = pick(ns.syslog_url, "SYSLOG_URL", cfg.syslog_url)
    if ns.syslog_legacy:
        cfg.syslog, cfg.syslog_url = True, ns.syslog_legacy
    cfg.ovsdb = pick(ns.ovsdb, "OVSDB", cfg.ovsdb)
    if not cfg.ovsdb.startswith(("unix:", "tcp:")):
        raise ConfigError(f"invalid --ovsdb address {cfg.ovsdb!r} (want unix:PATH or tcp:IP:PORT)")
    cfg.ovs_datapath = pick(ns.ovs_datapath, "OVS_DATAPATH", cfg.ovs_datapath)
    if cfg.ovs_datapath not in ("system", "netdev"):
        raise ConfigError(f"invalid --ovs-datapath {cfg.ovs_datapath!r} (want system or netdev)")
    cfg.plugin_socket = pick(ns.plugin_socket, "PLUGIN_SOCKET", cfg.plugin_socket)
    cfg.cni_socket = pick(ns.cni_socket, "CNI_SOCKET", cfg.cni_socket)
    if not cfg.cni_socket.startswith("/"):
        raise ConfigError(f"invalid --cni-socket {cfg.cni_socket!r} (want an absolute path)")
    cfg.gobgp_dir = pick(ns.gobgp_dir, "GOBGP_DIR", cfg.gobgp_dir)
    if not cfg.gobgp_dir.startswith("/"):
        raise ConfigError(f"invalid --gobgp-dir {cfg.gobgp_dir!r} (want an absolute path)")
    cfg.k8s_config = pick(ns.k8s_config, "K8S_CONFIG", cfg.k8s_config)
    cfg.docker_host = pick(ns.docker_host, "DOCKER_HOST", cfg.docker_host)
    mtu = str(pick(ns.mtu, "MTU", "1450"))
    if mtu == "auto":
        cfg.mtu = "auto"
    else:
        try:
            cfg.mtu = int(mtu)
            if not 576 <= cfg.mtu <= 9000:
                raise ValueError("must be 576..9000")
        except ValueError as e:
            raise ConfigError(f"invalid mtu {mtu!r}: {e}") from e
    cfg.ovs_ctl = pick(ns.ovs_ctl, "OVS_CTL", cfg.ovs_ctl)
    cfg.debug_listen = pick(ns.debug_listen, "DEBUG_LISTEN", cfg.debug_listen)
    try:
        split_hostport(cfg.debug_listen)
    except ValueError as e:
        raise ConfigError(f"invalid --debug-listen: {e}") from e
    return cfg
