"""``contivk8s``: the CNI plugin (CNI spec 0.3.1, 0.4.0, 1.0.0; docs/cni.md).

The container runtime runs it once per operation with ``CNI_COMMAND`` (ADD, DEL, CHECK, VERSION),
``CNI_CONTAINERID``, ``CNI_NETNS``, ``CNI_IFNAME``, ``CNI_ARGS`` in the environment and the network
configuration on stdin. The plugin does no networking itself: it validates its input, merges the
labels, sends one HTTP request over the unix socket of this host's netplugin (``cniSocket`` in the
network configuration, default ``/run/contiv/contiv-cni.sock``; path ``/ContivCNI.AddPod``,
``/ContivCNI.DelPod`` or ``/ContivCNI.CheckPod``) and prints the CNI result or error.

Invariants:
- stdout carries exactly one JSON document (the result, the VERSION answer or the error) and
  nothing else; diagnostics go to the log file (``logFile`` in the configuration, else
  ``CONTIV_CNI_LOG``, else ``/var/log/contiv/contivk8s.log``); an unwritable log is ignored;
- errors are the spec's ``{"cniVersion", "code", "msg", "details"}`` with ``msg`` prefixed
  ``Contiv:`` like the original's, and exit status 1; no Python traceback ever reaches the caller;
- the standard library only, imported lazily where it can be: the plugin starts for every pod.

Labels choosing tenant, network and group (``io.contiv.tenant``, ``io.contiv.network``,
``io.contiv.net-group``) come from the configuration's ``args`` (flat keys, ``args.cni`` keys, or the
conventions' ``args.cni.labels`` list of ``{"key", "value"}``), overridden by ``CNI_ARGS`` keys;
netplugin applies the defaults (``default``, ``default-net``).
"""

from __future__ import annotations

import json
import os
import sys
import time

SUPPORTED_VERSIONS = ("0.3.1", "0.4.0", "1.0.0")
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION")
DEFAULT_SOCKET = "/run/contiv/contiv-cni.sock"
DEFAULT_LOG = "/var/log/contiv/contivk8s.log"
DEFAULT_TIMEOUT = 120.0

# CNI spec error codes; 100+ are contivpy's (docs/cni.md)
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
INVALID_ENV = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NETPLUGIN_FAILED = 100

_K8S_KEYS = ("K8S_POD_NAME", "K8S_POD_NAMESPACE", "K8S_POD_INFRA_CONTAINER_ID")


class CniError(Exception):
    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details


class Log:
    """Append-only log file; never raises, never writes to stdout."""

    def __init__(self) -> None:
        self.path = DEFAULT_LOG
        self.prefix = ""

    def __call__(self, msg: str) -> None:
        try:
            d = os.path.dirname(self.path)
            if d and not os.path.isdir(d):
                os.makedirs(d, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} [{os.getpid()}] {self.prefix}{msg}\n")
        except OSError:
            pass


log = Log()


# -- input ---------------------------------------------------------------------------------------
def parse_cni_args(raw: str) -> dict[str, str]:
    """``K=V;K=V`` (CNI_ARGS) -> dict; an item without ``=`` is an error (code 4)."""
    out: dict[str, str] = {}
    for item in raw.split(";"):
        if not item.strip():
            continue
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise CniError(INVALID_ENV, f"invalid CNI_ARGS item {item!r}: KEY=VALUE expected")
        out[k.strip()] = v.strip()
    return out


def config_labels(conf: dict) -> dict[str, str]:
    """Labels from the network configuration's ``args``."""
    args = conf.get("args")
    out: dict[str, str] = {}
    if not isinstance(args, dict):
        return out
    for src in (args, args.get("cni") if isinstance(args.get("cni"), dict) else {}):
        for k, v in src.items():
            if isinstance(v, str):
                out[k] = v
    cni = args.get("cni")
    if isinstance(cni, dict) and isinstance(cni.get("labels"), list):
        for item in cni["labels"]:
            if isinstance(item, dict) and isinstance(item.get("key"), str):
                out[item["key"]] = str(item.get("value", ""))
    return out


def read_config(stdin) -> dict:
    try:
        raw = stdin.read()
    except (OSError, ValueError) as e:
        raise CniError(IO_FAILURE, f"cannot read the network configuration from stdin: {e}") from None
    try:
        conf = json.loads(raw)
    except ValueError as e:
        raise CniError(DECODE_FAILURE, "cannot decode the network configuration", str(e)) from None
    if not isinstance(conf, dict):
        raise CniError(DECODE_FAILURE, "the network configuration must be a JSON object")
    return conf


def check_version(conf: dict) -> str:
    v = conf.get("cniVersion")
    if not isinstance(v, str) or not v:
        raise CniError(INVALID_CONFIG, "cniVersion is missing in the network configuration")
    if v not in SUPPORTED_VERSIONS:
        raise CniError(
            INCOMPATIBLE_VERSION,
            f"incompatible CNI version {v}",
            f"supported versions: {', '.join(SUPPORTED_VERSIONS)}",
        )
    return v


def check_env(command: str, env) -> None:
    cid = env.get("CNI_CONTAINERID", "")
    if not cid:
        raise CniError(INVALID_ENV, "CNI_CONTAINERID is not set")
    if not (cid[0].isascii() and cid[0].isalnum()) or not all(
        c.isascii() and (c.isalnum() or c in "_.-") for c in cid
    ):
        raise CniError(INVALID_ENV, f"invalid CNI_CONTAINERID {cid!r}")
    ifname = env.get("CNI_IFNAME", "")
    if not ifname:
        raise CniError(INVALID_ENV, "CNI_IFNAME is not set")
    if (
        len(ifname) > 15
        or ifname in (".", "..")
        or any(c in ifname for c in "/:")
        or not all(c.isprintable() and not c.isspace() for c in ifname)
    ):
        raise CniError(INVALID_ENV, f"invalid CNI_IFNAME {ifname!r}: not a valid interface name")
    netns = env.get("CNI_NETNS", "")
    if command != "DEL":
        if not netns:
            raise CniError(INVALID_ENV, "CNI_NETNS is not set")
        if not netns.startswith("/"):
            raise CniError(INVALID_ENV, f"invalid CNI_NETNS {netns!r}: an absolute path is required")
        if not os.path.exists(netns):
            raise CniError(INVALID_ENV, f"invalid CNI_NETNS {netns}: no such file")


# -- netplugin -------------------------------------------------------------------------------------
def call_netplugin(sock_path: str, method: str, body: dict, timeout: float) -> dict:
    import http.client
    import socket

    class _Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(sock_path)
            except OSError:
                s.close()
                raise
            self.sock = s

    conn = _Conn("localhost", timeout=timeout)
    try:
        conn.request("POST", "/ContivCNI." + method, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
    except TimeoutError:
        raise CniError(
            TRY_AGAIN_LATER, f"netplugin did not answer within {timeout:g} s on {sock_path}"
        ) from None
    except (OSError, http.client.HTTPException) as e:
        why = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise CniError(
            TRY_AGAIN_LATER,
            f"cannot reach netplugin on {sock_path}: {why}",
            "is netplugin running on this host with this --cni-socket?",
        ) from None
    finally:
        conn.close()
    try:
        reply = json.loads(data)
        if not isinstance(reply, dict):
            raise ValueError("not an object")
    except ValueError:
        raise CniError(NETPLUGIN_FAILED, f"unreadable answer from netplugin (HTTP {resp.status})") from None
    if reply.get("result", 1) != 0:
        code = reply.get("code")
        raise CniError(
            code if isinstance(code, int) and code > 0 else NETPLUGIN_FAILED,
            str(reply.get("errmsg") or f"netplugin {method} failed"),
            str(reply.get("errinfo") or ""),
        )
    return reply


# -- results -----------------------------------------------------------------------------------------
def _ip_version(addr: str) -> str:
    return "6" if ":" in addr else "4"


def convert_result(res: dict, version: str) -> dict:
    """A (prev)result in another spec version's shape: 0.3.x/0.4.0 ``ips`` carry ``version``."""
    out = {k: v for k, v in res.items() if k in ("interfaces", "ips", "routes", "dns")}
    ips = []
    for ip in res.get("ips") or []:
        if not isinstance(ip, dict):
            continue
        ip = dict(ip)
        if version == "1.0.0":
            ip.pop("version", None)
        elif "address" in ip:
            ip["version"] = _ip_version(str(ip["address"]))
        ips.append(ip)
    out["ips"] = ips
    out["cniVersion"] = version
    return out


def build_result(reply: dict, version: str, netns: str, prev: dict | None) -> dict:
    res = convert_result(prev, version) if isinstance(prev, dict) else {"cniVersion": version}
    interfaces = list(res.get("interfaces") or [])
    if reply.get("hostifname"):
        interfaces.append({"name": reply["hostifname"]})
    idx = len(interfaces)
    pod_if = {"name": reply.get("ifname", ""), "sandbox": netns}
    if reply.get("macaddress"):
        pod_if["mac"] = reply["macaddress"]
    interfaces.append(pod_if)
    ips = list(res.get("ips") or [])
    for addr, gw in ((reply.get("ipaddress"), reply.get("gateway")), (reply.get("ipv6address"), reply.get("ipv6gateway"))):  # fmt: skip
        if not addr:
            continue
        ip = {"address": addr, "interface": idx}
        if version != "1.0.0":
            ip = {"version": _ip_version(addr), **ip}
        if gw:
            ip["gateway"] = gw
        ips.append(ip)
    routes = list(res.get("routes") or [])
    routes += [r for r in reply.get("routes") or [] if isinstance(r, dict)]
    res.update(cniVersion=version, interfaces=interfaces, ips=ips, routes=routes)
    res.setdefault("dns", {})
    return res


def prev_addresses(prev: dict | None, ifname: str, netns: str) -> list[str]:
    """Addresses the prevResult gives our interface (CHECK verifies them)."""
    if not isinstance(prev, dict):
        return []
    ifs = prev.get("interfaces") or []
    out = []
    for ip in prev.get("ips") or []:
        if not isinstance(ip, dict) or not isinstance(ip.get("address"), str):
            continue
        i = ip.get("interface")
        if isinstance(i, int) and 0 <= i < len(ifs) and isinstance(ifs[i], dict):
            if ifs[i].get("name") != ifname or ifs[i].get("sandbox", netns) != netns:
                continue
        out.append(ip["address"])
    return out


# -- main --------------------------------------------------------------------------------------------
def run(env, stdin, ctx: dict) -> dict:
    command = env.get("CNI_COMMAND", "")
    if not command:
        raise CniError(INVALID_ENV, "CNI_COMMAND is not set")
    if command not in COMMANDS:
        raise CniError(INVALID_ENV, f"unknown CNI_COMMAND {command!r}", f"supported: {', '.join(COMMANDS)}")
    try:
        conf = read_config(stdin)
    except CniError:
        if command != "VERSION":
            raise
        conf = {}  # VERSION answers whatever came on stdin
    if isinstance(conf.get("logFile"), str) and conf["logFile"]:
        log.path = conf["logFile"]
    if command == "VERSION":
        v = conf.get("cniVersion")
        return {
            "cniVersion": v if v in SUPPORTED_VERSIONS else SUPPORTED_VERSIONS[-1],
            "supportedVersions": list(SUPPORTED_VERSIONS),
        }
    version = check_version(conf)
    ctx["version"] = version
    check_env(command, env)
    if command == "CHECK" and version == "0.3.1":
        raise CniError(INCOMPATIBLE_VERSION, "CNI version 0.3.1 does not support the CHECK command")
    sock = conf.get("cniSocket") or DEFAULT_SOCKET
    if not isinstance(sock, str) or not sock.startswith("/"):
        raise CniError(INVALID_CONFIG, f"invalid cniSocket {sock!r}: an absolute path is required")
    timeout = conf.get("timeout", DEFAULT_TIMEOUT)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise CniError(INVALID_CONFIG, f"invalid timeout {timeout!r}: a positive number of seconds")
    args = parse_cni_args(env.get("CNI_ARGS", ""))
    labels = config_labels(conf)
    labels.update({k: v for k, v in args.items() if not k.startswith("K8S_") and k != "IgnoreUnknown"})
    netns, ifname = env.get("CNI_NETNS", ""), env["CNI_IFNAME"]
    body = {k: args.get(k, "") for k in _K8S_KEYS}
    body.update(CNI_CONTAINERID=env["CNI_CONTAINERID"], CNI_NETNS=netns, CNI_IFNAME=ifname, Labels=labels)
    prev = conf.get("prevResult")
    log.prefix = f"{command} {env['CNI_CONTAINERID'][:12]}/{ifname}: "
    if command == "ADD":
        reply = call_netplugin(sock, "AddPod", body, float(timeout))
        log(f"attached {reply.get('ipaddress')} ({reply.get('endpointid')})")
        return build_result(reply, version, netns, prev)
    if command == "DEL":
        reply = call_netplugin(sock, "DelPod", body, float(timeout))
        log(f"detached {reply.get('endpointid') or '(nothing to do)'}")
        return {}
    body["Addresses"] = prev_addresses(prev, ifname, netns)
    call_netplugin(sock, "CheckPod", body, float(timeout))
    return {}


def main(argv=None, env=None, stdin=None, stdout=None) -> int:
    env = os.environ if env is None else env
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    ctx = {"version": SUPPORTED_VERSIONS[-1]}
    log.path, log.prefix = env.get("CONTIV_CNI_LOG") or DEFAULT_LOG, ""
    try:
        out = run(env, stdin, ctx)
        if out:
            stdout.write(json.dumps(out) + "\n")
        return 0
    except CniError as e:
        err = {"code": e.code, "msg": f"Contiv: {e.msg}", "details": e.details}
        log(f"error {e.code}: {e.msg} {e.details}".rstrip())
    except Exception as e:  # noqa: BLE001 - a bug: logged, reported as a plain CNI error
        import traceback

        log("internal error: " + "".join(traceback.format_exception(e)))
        err = {
            "code": NETPLUGIN_FAILED,
            "msg": "Contiv: internal error in contivk8s (see its log)",
            "details": "",
        }
    stdout.write(json.dumps({"cniVersion": ctx["version"], **err}) + "\n")
    return 1
