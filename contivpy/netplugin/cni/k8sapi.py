"""Pod labels from the Kubernetes API server, for the CNI server (docs/cni.md).

Configuration, as the original's: the JSON file ``--k8s-config`` (default
``/var/contiv/config/contiv.json``) with ``K8S_API_SERVER`` (``https://host:port``), ``K8S_CA``,
``K8S_CERT``, ``K8S_KEY`` (file paths) and ``K8S_TOKEN`` (the token, or a file holding it). Without that
file (or without ``K8S_API_SERVER`` in it), inside a cluster (``KUBERNETES_SERVICE_HOST``/``PORT`` set), the pod's service account is used:
``/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt}``. Neither: no API, labels come from the
CNI arguments only.

``pod_labels(namespace, name)`` is one GET ``/api/v1/namespaces/<ns>/pods/<name>``: the pod's
``metadata.labels``, ``None`` when the pod does not exist (404: the CNI labels are used), and an
``ExternalServiceError`` (the plugin reports "try again later") when the server cannot be reached or
answers anything else. Invariant: a request never waits longer than ``timeout`` seconds.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp

from contivpy.common.errors import ExternalServiceError, ValidationError

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "/var/contiv/config/contiv.json"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass
class K8sConfig:
    server: str
    ca: str = ""
    cert: str = ""
    key: str = ""
    token: str = ""

    @classmethod
    def load(cls, path: str = DEFAULT_CONFIG, env: dict[str, str] | None = None) -> K8sConfig | None:
        env = dict(os.environ if env is None else env)
        if path and os.path.exists(path):
            try:
                with open(path) as f:
                    d = json.load(f)
                if not isinstance(d, dict):
                    raise ValueError("a JSON object is required")
            except (OSError, ValueError) as e:
                raise ValidationError(f"cannot read the Kubernetes config {path}: {e}") from None
            server = str(d.get("K8S_API_SERVER") or "").rstrip("/")
            if not server:
                return cls._in_cluster(env)
            if not server.startswith(("http://", "https://")):
                raise ValidationError(f"{path}: K8S_API_SERVER must be an http(s):// URL")
            token = str(d.get("K8S_TOKEN") or "")
            if token and os.path.isfile(token):
                with open(token) as f:
                    token = f.read().strip()
            return cls(server, str(d.get("K8S_CA") or ""), str(d.get("K8S_CERT") or ""), str(d.get("K8S_KEY") or ""), token)  # fmt: skip
        return cls._in_cluster(env)

    @classmethod
    def _in_cluster(cls, env: dict[str, str]) -> K8sConfig | None:
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
        if host and port and os.path.exists(f"{SA_DIR}/token"):
            with open(f"{SA_DIR}/token") as f:
                token = f.read().strip()
            h = f"[{host}]" if ":" in host else host
            return cls(f"https://{h}:{port}", f"{SA_DIR}/ca.crt", token=token)
        return None


class K8sApi:
    def __init__(self, cfg: K8sConfig, timeout: float = 10.0) -> None:
        self.cfg = cfg
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | bool = False
        if cfg.server.startswith("https://"):
            ctx = ssl.create_default_context(cafile=cfg.ca or None)
            if cfg.cert:
                ctx.load_cert_chain(cfg.cert, cfg.key or None)
            self._ssl = ctx

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def pod_labels(self, namespace: str, name: str) -> dict[str, str] | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = f"{self.cfg.server}/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}"
        headers = {"Accept": "application/json"}
        if self.cfg.token:
            headers["Authorization"] = f"Bearer {self.cfg.token}"
        try:
            async with self._session.get(url, headers=headers, ssl=self._ssl) as r:
                if r.status == 404:
                    return None
                if r.status != 200:
                    raise ExternalServiceError(
                        f"cannot reach the Kubernetes API for pod {namespace}/{name}: HTTP {r.status}"
                    )
                pod = await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise ExternalServiceError(
                f"cannot reach the Kubernetes API for pod {namespace}/{name}: {e or type(e).__name__}"
            ) from None
        labels = ((pod or {}).get("metadata") or {}).get("labels") or {}
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
