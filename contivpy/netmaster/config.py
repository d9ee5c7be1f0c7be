"""netmaster configuration: both flag generations, CONTIV_NETMASTER_* env vars, validation.

HEAD (urfave/cli) flags and their aliases, legacy Go-``flag`` single-dash forms
(``-cluster-store etcd://h:p``, ``-listen-url``, ``-control-url``, ``-cluster-mode``, ``-plugin-mode``,
``-debug``, ``-plugin-name``, ``-version``) are all accepted; any single-dash long flag is
normalised to its double-dash spelling before argparse sees it. Precedence: flag > env > default.

``parse(argv, env)`` returns a ``Config`` or raises ``ConfigError`` whose message is the
original's (docs/original.md §1.1); ``__main__`` logs it and exits with code 22. Deliberate
fix: the original swapped the "forwarding mode is not set" / "unknown forwarding mode"
messages; contivpy prints the one that matches the problem.

etcd: ``--etcd-endpoints`` takes a comma list; every member is used (``etcd_url`` keeps the whole
list). ``--etcd-tls-ca-file``, ``--etcd-tls-cert-file``, ``--etcd-tls-key-file``
(``CONTIV_NETMASTER_ETCD_TLS_*``) configure TLS to https:// endpoints (docs/deployment.md).
TLS and auth (``--tls-cert-file``, ``--tls-key-file``, ``--tls-auto``, ``--tls-dir``, ``--auth``,
``--auth-admin-password-file``, ``--auth-token-ttl``) are contivpy's built-in replacement of the
original's separate auth_proxy (docs/security.md).

Extensions (not in the original): ``--docker-host`` (the original hard-coded
unix:///var/run/docker.sock) and ``--rpc-port`` (the original hard-coded 9001), both needed to
run several instances on one machine in tests. ``--k8s-config`` (``CONTIV_NETMASTER_K8S_CONFIG``,
default ``/var/contiv/config/contiv.json``, the original's fixed path) names the Kubernetes API
configuration used in ``--mode kubernetes`` (docs/kubernetes.md).
"""

from __future__ import annotations

import argparse
import functools
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlparse

from contivpy.common import logfmt
from contivpy.common.errors import ContivError

MODES = ("docker", "kubernetes", "swarm-mode", "test")
BIN = "netmaster"


class ConfigError(ContivError):
    pass


@dataclass
class Config:
    etcd_url: str = "http://127.0.0.1:2379"  # comma list of the etcd cluster's client URLs
    etcd_ca_file: str = ""
    etcd_cert_file: str = ""
    etcd_key_file: str = ""
    cluster_mode: str = "docker"
    net_mode: str = "vlan"
    fwd_mode: str = "bridge"
    listen_url: str = "0.0.0.0:9999"
    control_url: str = ""
    infra: str = "default"
    plugin_name: str = "netplugin"
    log_level: str = "INFO"
    json_log: bool = False
    syslog: bool = False
    syslog_url: str = "udp://127.0.0.1:514"
    docker_host: str = "unix:///var/run/docker.sock"
    rpc_port: int = 9001
    k8s_config: str = "/var/contiv/config/contiv.json"  # --mode kubernetes: API server config
    # secure access (docs/security.md): HTTPS on every REST listener, login/roles (auth.py)
    tls_cert_file: str = ""
    tls_key_file: str = ""
    auth: bool = False
    auth_admin_password: str = ""
    auth_token_ttl: int = 12 * 3600

    @property
    def control_ip(self) -> str:
        return self.control_url.rsplit(":", 1)[0]

    @property
    def control_port(self) -> int:
        return int(self.control_url.rsplit(":", 1)[1])


# (dest, names, env suffix, default, is_bool)
_FLAGS = [
    ("etcd", ["--etcd-endpoints", "--etcd"], "ETCD_ENDPOINTS", "", False),
    ("etcd_ca", ["--etcd-tls-ca-file"], "ETCD_TLS_CA_FILE", "", False),
    ("etcd_cert", ["--etcd-tls-cert-file"], "ETCD_TLS_CERT_FILE", "", False),
    ("etcd_key", ["--etcd-tls-key-file"], "ETCD_TLS_KEY_FILE", "", False),
    ("consul", ["--consul-endpoints", "--consul"], "CONSUL_ENDPOINTS", "", False),
    ("cluster_store", ["--cluster-store"], None, "", False),
    ("mode", ["--mode", "--plugin-mode", "--cluster-mode"], "MODE", "", False),
    ("netmode", ["--netmode", "--network-mode"], "NET_MODE", "", False),
    ("fwdmode", ["--fwdmode", "--forward-mode"], "FORWARD_MODE", "", False),
    ("listen", ["--external-address", "--listen-url"], "EXTERNAL_ADDRESS", "0.0.0.0:9999", False),
    ("control", ["--internal-address", "--control-url"], "INTERNAL_ADDRESS", "", False),
    ("infra", ["--infra", "--infra-type"], "INFRA", "default", False),
    ("name", ["--name", "--plugin-name"], "PLUGIN_NAME", "netplugin", False),
    ("log_level", ["--log-level"], "LOG_LEVEL", "INFO", False),
    ("json_log", ["--use-json-log", "--json-log"], "USE_JSON_LOG", False, True),
    ("syslog", ["--use-syslog", "--syslog"], "USE_SYSLOG", False, True),
    ("syslog_url", ["--syslog-url"], "SYSLOG_URL", "udp://127.0.0.1:514", False),
    ("docker_host", ["--docker-host"], "DOCKER_HOST", "unix:///var/run/docker.sock", False),
    ("rpc_port", ["--rpc-port"], "RPC_PORT", "9001", False),
    ("k8s_config", ["--k8s-config"], "K8S_CONFIG", "/var/contiv/config/contiv.json", False),
    ("tls_cert", ["--tls-cert-file"], "TLS_CERT_FILE", "", False),
    ("tls_key", ["--tls-key-file"], "TLS_KEY_FILE", "", False),
    ("tls_auto", ["--tls-auto"], "TLS_AUTO", False, True),
    ("tls_dir", ["--tls-dir"], "TLS_DIR", "/var/lib/contiv/netmaster", False),
    ("auth", ["--auth"], "AUTH", False, True),
    ("auth_pw_file", ["--auth-admin-password-file"], "AUTH_ADMIN_PASSWORD_FILE", "", False),
    ("auth_ttl", ["--auth-token-ttl"], "AUTH_TOKEN_TTL", "43200", False),
    ("debug", ["--debug"], None, False, True),
    ("version", ["--version", "-v"], None, False, True),
]
_BOOL_NAMES = {n for _, names, _, _, b in _FLAGS if b for n in names}
_LEGACY = {"cluster_store", "debug"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=BIN, description="Contiv netmaster service", allow_abbrev=False, add_help=True
    )
    for dest, names, env, default, is_bool in sorted(_FLAGS, key=lambda f: f[1][0]):
        envhelp = f" [$CONTIV_NETMASTER_{env}]" if env else ""
        if is_bool:
            p.add_argument(*names, dest=dest, action="store_true", default=None, help=envhelp.strip())
        else:
            p.add_argument(*names, dest=dest, default=None, help=f"(default: {default!r}){envhelp}")
    return p


def _normalise(argv: list[str]) -> list[str]:
    out: list[str] = []
    for a in argv:
        if a.startswith("-") and not a.startswith("--") and len(a) > 2 and a[1].isalpha():
            a = "-" + a  # Go flag style: -listen-url x  ==  --listen-url x
        if "=" in a and a.split("=", 1)[0] in _BOOL_NAMES:
            name, val = a.split("=", 1)
            if val.lower() in ("true", "1", "t"):
                a = name
            else:
                continue
        out.append(a)
    return out


def _env_bool(v: str) -> bool:
    return v.strip().lower() in ("1", "t", "true", "yes")


def _bind_ok(address: str) -> None:
    parts = address.split(":")
    if len(parts) != 2:
        raise ConfigError(f"bind address is not in 'ip:port' format, got {address}")
    try:
        port = int(parts[1])
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise ConfigError(f"bind port is a integer between 1-65535, got {port}")


def default_host_ip() -> str:
    """Address of the default route's interface (the original's GetDefaultAddr); no packet is sent."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # UDP connect only selects a source address
        return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()


def parse_args(argv: list[str]) -> argparse.Namespace:
    return _parser().parse_args(_normalise(argv))


def build(ns: argparse.Namespace, env: dict[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    vals: dict[str, object] = {}
    for dest, _names, suffix, default, is_bool in _FLAGS:
        v = getattr(ns, dest, None)
        if v is None and suffix and f"CONTIV_NETMASTER_{suffix}" in env:
            raw = env[f"CONTIV_NETMASTER_{suffix}"]
            v = _env_bool(raw) if is_bool else raw
        vals[dest] = default if v is None else v
    legacy = bool(vals["cluster_store"]) or bool(vals["debug"])
    cfg = Config()

    try:
        cfg.log_level = logfmt.parse_level(str(vals["log_level"]), bool(vals["debug"]))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    cfg.json_log, cfg.syslog, cfg.syslog_url = (
        bool(vals["json_log"]),
        bool(vals["syslog"]),
        str(vals["syslog_url"]),
    )

    mode = str(vals["mode"]).lower() or ("docker" if legacy else "")
    if not mode:
        raise ConfigError(f"{BIN} mode is not set")
    if mode not in MODES:
        raise ConfigError(f"unknown {BIN} mode: {mode}")
    netmode = str(vals["netmode"]).lower()
    fwdmode = str(vals["fwdmode"]).lower()
    if not legacy or netmode or fwdmode:
        if netmode == "":
            raise ConfigError(f"{BIN} network mode is not set")
        if netmode not in ("vlan", "vxlan"):
            raise ConfigError(f"unknown {BIN} network mode: {netmode}")
        if fwdmode == "":
            raise ConfigError(f"{BIN} forwarding mode is not set")
        if fwdmode not in ("bridge", "routing"):
            raise ConfigError(f"unknown {BIN} forwarding mode: {fwdmode}")
        if netmode == "vxlan" and fwdmode == "bridge":
            raise ConfigError(f'invalid {BIN} forwarding mode: "{fwdmode}" (network mode: "{netmode}")')
    cfg.cluster_mode, cfg.net_mode, cfg.fwd_mode = mode, netmode, fwdmode

    etcd, consul, store = str(vals["etcd"]), str(vals["consul"]), str(vals["cluster_store"])
    if store:
        u = urlparse(store)
        if u.scheme == "etcd":
            etcd = f"http://{u.netloc}"
        elif u.scheme == "consul":
            consul = f"http://{u.netloc}"
        else:
            raise ConfigError(f"invalid {BIN} cluster-store: {store}")
    if etcd and consul:
        raise ConfigError(
            f"ambiguous {BIN} db endpoints, both etcd and consul specified: etcd: {etcd}, consul: {consul}"
        )
    if consul:
        raise ConfigError(f"{BIN}: consul state store is not supported by contivpy, use etcd")
    endpoints = [e.strip() for e in (etcd or "http://127.0.0.1:2379").split(",") if e.strip()]
    if not endpoints:
        raise ConfigError(f"invalid {BIN} etcd endpoints: empty")
    urls = []
    for ep in endpoints:  # every member is used (the store fails over between them)
        u = urlparse(ep if "://" in ep else "http://" + ep)
        try:
            ok = bool(u.hostname) and u.scheme in ("http", "https", "memory") and (u.port or 1) > 0
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"invalid {BIN} etcd endpoint: {ep}")
        urls.append(u.geturl())
    if len({u.split("://")[0] for u in urls}) > 1:
        raise ConfigError(f"invalid {BIN} etcd endpoints: mixed schemes in {','.join(endpoints)}")
    cfg.etcd_url = ",".join(urls)
    cfg.etcd_ca_file = str(vals["etcd_ca"])
    cfg.etcd_cert_file = str(vals["etcd_cert"])
    cfg.etcd_key_file = str(vals["etcd_key"])
    if bool(cfg.etcd_cert_file) != bool(cfg.etcd_key_file):
        raise ConfigError(f"{BIN}: --etcd-tls-cert-file and --etcd-tls-key-file must be given together")
    if (cfg.etcd_ca_file or cfg.etcd_cert_file) and not urls[0].startswith("https://"):
        raise ConfigError(f"{BIN}: etcd TLS files need https:// etcd endpoints")
    for path in (cfg.etcd_ca_file, cfg.etcd_cert_file, cfg.etcd_key_file):
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"{BIN}: cannot read etcd TLS file {path}")
    from contivpy.common.kv import etcd_client_problem

    if problem := etcd_client_problem(env):
        raise ConfigError(f"{BIN}: {problem}")

    cfg.plugin_name = str(vals["name"])
    listen = str(vals["listen"])
    if not listen:
        raise ConfigError(f"{BIN} external-address is not set")
    if listen.startswith(":"):  # legacy default form ":9999"
        listen = "0.0.0.0" + listen
    _bind_ok(listen)
    cfg.listen_url = listen
    control = str(vals["control"])
    if control.startswith(":"):
        control = ""
    if not control:
        host = listen.split(":")[0]
        ip = host if host not in ("", "0.0.0.0") else default_host_ip()
        control = f"{ip}:{listen.split(':')[1]}"
    else:
        _bind_ok(control)
    cfg.control_url = control

    infra = str(vals["infra"]).lower()
    if infra not in ("aci", "default"):
        raise ConfigError(f"Unknown {BIN} infra type: {infra}")
    cfg.infra = infra
    cfg.docker_host = str(vals["docker_host"])
    try:
        cfg.rpc_port = int(str(vals["rpc_port"]))
    except ValueError:
        raise ConfigError(f"bind port is a integer between 1-65535, got {vals['rpc_port']}") from None
    if not 0 <= cfg.rpc_port <= 65535:
        raise ConfigError(f"bind port is a integer between 1-65535, got {cfg.rpc_port}")
    cfg.k8s_config = str(vals["k8s_config"])
    _secure(vals, cfg)
    return cfg


def _secure(vals: dict[str, object], cfg: Config) -> None:
    """TLS and auth flags. ``--tls-auto`` generates (or reuses) a pair in ``--tls-dir``; auth needs TLS."""
    cert, key = str(vals["tls_cert"]), str(vals["tls_key"])
    if bool(cert) != bool(key):
        raise ConfigError(f"{BIN}: --tls-cert-file and --tls-key-file must be given together")
    if not cert and vals["tls_auto"]:
        from contivpy.netmaster import tls

        names = ["127.0.0.1", "localhost", socket.gethostname(), cfg.control_ip, cfg.listen_url.split(":")[0]]
        try:
            cert, key = tls.ensure_self_signed(str(vals["tls_dir"]), [n for n in names if n != "0.0.0.0"])
        except OSError as exc:
            raise ConfigError(f"{BIN}: cannot create TLS certificate in {vals['tls_dir']}: {exc}") from None
    for f in (cert, key):
        if f and not os.access(f, os.R_OK):
            raise ConfigError(f"{BIN}: cannot read TLS file {f}")
    cfg.tls_cert_file, cfg.tls_key_file = cert, key
    cfg.auth = bool(vals["auth"])
    if cfg.auth and not cert:
        raise ConfigError(f"{BIN}: --auth requires TLS (--tls-cert-file/--tls-key-file or --tls-auto)")
    pw_file = str(vals["auth_pw_file"])
    if pw_file:
        try:
            cfg.auth_admin_password = open(pw_file, encoding="utf-8").read().rstrip("\r\n")
        except (OSError, UnicodeError) as exc:
            raise ConfigError(f"{BIN}: cannot read admin password file {pw_file}: {exc}") from None
        if len(cfg.auth_admin_password) < 8:
            raise ConfigError(f"{BIN}: admin password in {pw_file} must have at least 8 characters")
    try:
        cfg.auth_token_ttl = int(str(vals["auth_ttl"]))
    except ValueError:
        cfg.auth_token_ttl = 0
    if cfg.auth_token_ttl <= 0:
        raise ConfigError(f"{BIN}: invalid --auth-token-ttl {vals['auth_ttl']} (seconds, > 0)")


__all__ = ["Config", "ConfigError", "parse_args", "build", "MODES", "default_host_ip", "version_info"]


@functools.cache
def version_info() -> dict[str, str]:
    """{"GitCommit","Version","BuildTime"} (see contivpy/common/version.py), computed once per
    process: it does not change while we run, and importlib.metadata scans every installed
    distribution (milliseconds on each GET /version otherwise)."""
    from contivpy.common.version import version_info as _info

    return _info()
