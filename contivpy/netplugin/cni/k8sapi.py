"""Pod labels from the Kubernetes API server, for the CNI server (docs/cni.md).

Configuration, as the original's: the JSON file ``--k8s-config`` (default
``/var/contiv/config/contiv.json``) with ``K8S_API_SERVER``, ``K8S_CA``, ``K8S_CERT``, ``K8S_KEY`` and
``K8S_TOKEN``; without it, inside a cluster, the pod's service account. Both are read, and the API is
spoken, by ``contivpy.common.k8sapi`` (the one Kubernetes API client, shared with netmaster's watcher);
this module only maps its answers to what the CNI server needs.

``pod_labels(namespace, name)`` is one GET of the pod: its ``metadata.labels``, ``None`` when the pod
does not exist (404: the CNI labels are used), and an ``ExternalServiceError`` (the plugin reports
"try again later") when the server cannot be reached or answers anything else. Invariant: a request
never waits longer than ``timeout`` seconds.
"""

from __future__ import annotations

from contivpy.common import k8sapi
from contivpy.common.errors import ExternalServiceError, ValidationError

DEFAULT_CONFIG = k8sapi.DEFAULT_CONFIG


def load(path: str = DEFAULT_CONFIG, env: dict[str, str] | None = None) -> k8sapi.K8sConfig | None:
    """The API to ask, or None (labels from the CNI arguments only); a bad file is a ValidationError."""
    try:
        return k8sapi.load_config(path, env)
    except k8sapi.K8sConfigError as e:
        raise ValidationError(f"cannot use the Kubernetes config: {e}") from None


class K8sApi:
    def __init__(self, cfg: k8sapi.K8sConfig, timeout: float = 10.0) -> None:
        self.cfg = cfg
        self._timeout = timeout
        self._client = k8sapi.KubeClient(cfg)

    async def close(self) -> None:
        await self._client.close()

    async def pod_labels(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            return await self._client.pod_labels(namespace, name)
        except (k8sapi.ApiError, k8sapi.Gone) as e:
            raise ExternalServiceError(
                f"cannot reach the Kubernetes API for pod {namespace}/{name}: {e}"
            ) from None
