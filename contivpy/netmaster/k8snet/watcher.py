"""netmaster ``--mode kubernetes``: watch the Kubernetes API, converge contiv objects (leader only).

Design (level-triggered, docs/kubernetes.md):
- One ``Informer`` (``contivpy.common.k8sapi``) per kind fills a ``translate.Cache`` and enqueues
  reconcile keys; nothing is written from an event handler.
- Keys: ``ns/<namespace>`` (the namespace's group and every policy of its NetworkPolicies),
  ``svc/<ns>/<name>`` (the Service's serviceLB, ``services.py``), ``pod/<ns>/<name>`` (the pod's
  provider candidate through the existing ``ProviderBook``, as a Docker container's labels) and
  ``gc`` (after each full list: find contiv objects with the Kubernetes prefixes whose namespace
  or Service is no longer known, and enqueue their keys so they are removed).
- ``reconcile(ns/<ns>)`` recomputes ``translate.translate_namespace`` from the cache and converges:
  group, policies, rules (create missing, delete extra; rule ids are content hashes, so an
  unchanged policy writes nothing), group attachments, stale policies, and the group once the
  namespace is gone. Every write is a ``Crud`` call: one fenced txn through the same hooks as the
  REST API (validation, links, EPG-policy state follow-ups). A restart converges to the same state.
- Affected keys: a Namespace or Pod change enqueues its namespace and every namespace having a
  policy with a ``namespaceSelector`` peer (their peer lists may change); a NetworkPolicy change
  enqueues its namespace; a Service or Endpoints change its ``svc/`` key; a Pod change also its
  ``pod/`` key.
- Failures: translation problems are logged (once per distinct text) and the part skipped;
  store or hook errors make the key retry with backoff (``common/reconcile.py``); a group that
  cannot be deleted yet (it still has endpoints) is retried the same way.

The reconciler's workers start only after every informer listed once, so nothing is deleted
from a partial view. Every ``RESYNC`` seconds (env ``CONTIV_NETMASTER_K8S_RESYNC``) every
namespace and Service key is converged again, which repairs drift made through the REST API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

from contivpy.common import k8sapi
from contivpy.common.errors import ContivError, NotFoundError, ValidationError
from contivpy.common.reconcile import Reconciler
from contivpy.model import keys
from contivpy.model.state import EndpointState
from contivpy.netmaster.k8snet import services as S
from contivpy.netmaster.k8snet import translate as T

log = logging.getLogger("netmaster.k8s")

KINDS = ("Namespace", "Pod", "NetworkPolicy", "Service", "Endpoints")
# the serviceLB's ``nodePorts`` (the host access work: netplugin DNATs them in CONTIV-NODEPORT)
RESYNC = 600.0  # seconds between full re-convergences (``CONTIV_NETMASTER_K8S_RESYNC`` overrides)


def resync_period(env: dict[str, str]) -> float:
    try:
        v = float(env.get("CONTIV_NETMASTER_K8S_RESYNC", "") or RESYNC)
    except ValueError:
        v = RESYNC
    return v if v > 0 else RESYNC


class K8sWatcher:
    def __init__(
        self, crud: Any, client: k8sapi.KubeClient, network: str = T.NETWORK, resync: float = RESYNC
    ) -> None:
        self.crud = crud
        self.resync = resync
        self.client = client
        self.network = network
        self.cache = T.Cache()
        self.rec: Reconciler[str] = Reconciler(
            "kubernetes", self._reconcile, max_delay=10.0, desired=self._desired
        )
        self.informers = {k: k8sapi.Informer(client, k, self) for k in KINDS}
        self._said: set[str] = set()

    # --- informer handler ---------------------------------------------------------------------
    def _affected(self, kind: str, key: tuple[str, str]) -> set[str]:
        """Reconcile keys an object change may affect."""
        if kind in ("Service", "Endpoints"):
            return {f"svc/{key[0]}/{key[1]}"}
        ns = key[1] if kind == "Namespace" else key[0]
        out = {"ns/" + ns}
        if kind in ("Namespace", "Pod"):
            out |= {"ns/" + n for n in self.cache.namespaces() if self.cache.has_ns_selector(n)}
        if kind == "Pod":
            out.add(f"pod/{key[0]}/{key[1]}")
            # a Service's network is its pods' network: the namespace's Services are looked at again
            out |= {f"svc/{sns}/{name}" for sns, name in self.cache.kind("Service") if sns == key[0]}
        return out

    async def replace(self, kind: str, items: list[dict]) -> None:
        changed = self.cache.replace(kind, items)
        affected: set[str] = set()
        for k in changed:
            affected |= self._affected(kind, k)
        for k in sorted(affected):
            self.rec.enqueue(k)
        self.rec.enqueue("gc")

    async def event(self, kind: str, typ: str, obj: dict) -> None:
        if typ in ("ADDED", "MODIFIED"):
            key = self.cache.put(kind, obj)
        elif typ == "DELETED":
            key = self.cache.drop(kind, obj)
        else:
            raise ValueError(f"unknown watch event type {typ!r}")
        for k in sorted(self._affected(kind, key)):
            self.rec.enqueue(k)

    # --- reconcile -------------------------------------------------------------------------------
    def _desired(self, key: str) -> bool:
        """A key whose object is gone leaves the reconciler's table once converged (no growth with churn)."""
        kind, _, rest = key.partition("/")
        if kind == "ns":
            return rest in self.cache.namespaces()
        if kind in ("svc", "pod"):
            ns, _, name = rest.partition("/")
            return (ns, name) in self.cache.kind("Service" if kind == "svc" else "Pod")
        return True

    def _say(self, text: str) -> None:
        if len(self._said) > 10000:  # bounded memory of what was already logged
            self._said.clear()
        if text not in self._said:
            self._said.add(text)
            log.warning("kubernetes: %s", text)

    async def _reconcile(self, key: str) -> None:
        if key == "gc":
            await self._gc()
            return
        if key.startswith("svc/"):
            _, ns, name = key.split("/", 2)
            await self._service(ns, name)
            return
        if key.startswith("pod/"):
            _, ns, name = key.split("/", 2)
            await self._provider(ns, name)
            return
        ns = key.split("/", 1)[1]
        members = await self._members()
        desired = T.translate_namespace(self.cache, ns, lambda ip, g: (ip, g) in members)
        for p in desired.problems:
            self._say(p)
        await self.converge(ns, desired)

    async def _members(self) -> set[tuple[str, str]]:
        """(address, group) of every contiv endpoint of the tenant: a pod can be a policy target
        only once it is an endpoint of its group (the rule hooks check the same)."""
        items, _ = await self.crud.kv.get_prefix(keys.EPS)
        out: set[tuple[str, str]] = set()
        suffix = ":" + T.TENANT
        for i in items:
            ep = EndpointState.parse(i.value)
            if ep is not None and ep.ipAddress and ep.endpointGroupKey.endswith(suffix):
                out.add((ep.ipAddress, ep.endpointGroupKey[: -len(suffix)]))
        return out

    async def _gc(self) -> None:
        known = set(self.cache.namespaces())
        owners: set[str] = set()
        for g in await self.crud.list("endpointGroup"):
            name = g.get("groupName", "")
            if g.get("tenantName") == T.TENANT and name.startswith(T.GROUP_PREFIX):
                owners.add(name[len(T.GROUP_PREFIX) :])
        for p in await self.crud.list("policy"):
            ns = T.ns_of_policy(p.get("policyName", ""))
            if p.get("tenantName") == T.TENANT and ns:
                owners.add(ns)
        for ns in sorted(owners - known):
            self.rec.enqueue("ns/" + ns)
        services = self.cache.kind("Service")
        for svc in await self.crud.list("serviceLB"):
            parsed = S.parse_service_name(svc.get("serviceName", ""))
            if svc.get("tenantName") == T.TENANT and parsed and parsed not in services:
                self.rec.enqueue(f"svc/{parsed[0]}/{parsed[1]}")

    # --- services ------------------------------------------------------------------------------
    async def _subnet(self, network: str) -> str:
        try:
            return str((await self.crud.get("network", f"{T.TENANT}:{network}")).get("subnet", ""))
        except NotFoundError:
            return ""

    def _note(self, text: str) -> None:
        """A deliberate skip (headless, ExternalName): an info line, once per distinct text."""
        if len(self._said) > 10000:
            self._said.clear()
        if text not in self._said:
            self._said.add(text)
            log.info("kubernetes: %s", text)

    async def _service(self, ns: str, name: str) -> None:
        key = f"{T.TENANT}:{S.service_name(ns, name)}"
        svc = self.cache.kind("Service").get((ns, name))
        want = None
        if svc is not None:
            problems: list[str] = []
            notes: list[str] = []
            spec = svc.get("spec") if isinstance(svc.get("spec"), dict) else {}
            sel = spec.get("selector") if isinstance(spec.get("selector"), dict) else {}
            network, why = S.service_network(self.cache, ns, sel) if sel else (self.network, [])
            problems += [f"Service {ns}/{name}: {w}" for w in why]
            endpoints = self.cache.kind("Endpoints").get((ns, name))
            want = S.service_lb(svc, endpoints, await self._subnet(network), problems, network, notes)
            for p in problems:
                self._say(p)
            for n in notes:
                self._note(n)
        try:
            cur = await self.crud.get("serviceLB", key)
        except NotFoundError:
            cur = None
        if want is None:
            if cur is not None:
                await self.crud.delete("serviceLB", key)
                log.info("kubernetes: deleted service %s", key)
            return
        body = want[1]
        fields = ("networkName", "ports", "selectors", "ipAddress", "nodePorts")
        if cur is not None and all(cur.get(f) == body.get(f) for f in fields):
            return
        await self.crud.create_or_update("serviceLB", key, body)
        log.info("kubernetes: %s service %s", "updated" if cur else "created", key)

    async def _provider(self, ns: str, name: str) -> None:
        """Keep the pod's provider candidate (labels, address) in line with its readiness."""
        from contivpy.netmaster.api.plugin_routes import allocator_of

        allocator = allocator_of(self.crud)
        pod = self.cache.kind("Pod").get((ns, name))
        req = None if pod is None else S.provider(pod)
        if req is not None:
            try:
                await allocator.providers.update(req)
            except NotFoundError:  # not a contiv endpoint (yet): nothing to balance to
                log.debug("kubernetes: pod %s/%s has no contiv endpoint at %s", ns, name, req["IPAddress"])
            return
        ip = T.pod_ipv4(pod) if pod is not None else None
        if ip:  # not ready (any more): not a provider; a deleted pod's endpoint removal does this
            labels = T.labels_of(pod) if pod is not None else {}
            tenant = labels.get(T.TENANT_LABEL) or T.TENANT
            await allocator.providers.update({"Event": "die", "Tenant": tenant, "IPAddress": ip})

    async def _ensure(self, obj_type: str, key: str, body: dict) -> None:
        try:
            await self.crud.get(obj_type, key)
        except NotFoundError:
            await self.crud.create_or_update(obj_type, key, body)
            log.info("kubernetes: created %s %s", obj_type, key)

    async def converge(self, ns: str, d: T.Desired) -> None:
        tenant = T.TENANT
        if d.group is not None:
            await self._ensure(
                "endpointGroup",
                f"{tenant}:{d.group}",
                {"tenantName": tenant, "groupName": d.group, "networkName": self.network},
            )
        prefix = T.policy_prefix(ns)
        # Order: policies; the rules of group-wide policies; attachments; the rules of targeted
        # policies. A rule scoped to a member address is accepted only on a policy attached to that
        # member's group, so those come after the attachment (an attached policy without rules does
        # nothing). Group-wide rules come first: rules added to a policy that is not attached yet
        # cost no EPG-policy recomputation, the attachment computes them once.
        for pname in sorted(d.policies):
            await self._ensure("policy", f"{tenant}:{pname}", {"tenantName": tenant, "policyName": pname})
        targeted = {p for p, dp in d.policies.items() if any(_target(r) for r in dp.rules.values())}
        for pname, dp in sorted(d.policies.items()):
            if pname not in targeted:
                await self._rules(pname, dp)
        groups = [g for g in await self.crud.list("endpointGroup") if g.get("tenantName") == tenant]
        existing = {g["groupName"] for g in groups}
        for pname, dp in sorted(d.policies.items()):
            for g in sorted(dp.groups - existing):
                self._say(f"policy {pname}: group {g} does not exist; not attached there")
        for g in groups:
            cur = list(g.get("policies") or [])
            mine = {p for p in cur if p.startswith(prefix)}
            want = {p for p, dp in d.policies.items() if g["groupName"] in dp.groups}
            if mine == want:
                continue

            def change(stored: dict | None, want: set[str] = want) -> dict:
                if stored is None:  # deleted meanwhile: the create hook refuses a missing network
                    raise NotFoundError("endpointGroup not found")
                body = {k: v for k, v in stored.items() if k not in ("link-sets", "links")}
                others = [p for p in stored.get("policies") or [] if not p.startswith(prefix)]
                body["policies"] = others + sorted(want)  # the stored group's other policies are kept
                return body

            try:
                stored = await self.crud.create_or_update("endpointGroup", g["key"], change)
            except NotFoundError:
                continue
            log.info("kubernetes: group %s policies %s", g["key"], stored.get("policies", []))
        for pname in sorted(targeted):
            await self._rules(pname, d.policies[pname])
        for p in await self.crud.list("policy"):
            pname = p.get("policyName", "")
            if p.get("tenantName") == tenant and pname.startswith(prefix) and pname not in d.policies:
                try:
                    await self.crud.delete("policy", p["key"])
                    log.info("kubernetes: deleted policy %s", p["key"])
                except NotFoundError:
                    pass
        if d.group is None:
            try:
                await self.crud.delete("endpointGroup", f"{tenant}:{T.ns_group(ns)}")
                log.info("kubernetes: deleted group %s:%s", tenant, T.ns_group(ns))
            except NotFoundError:
                pass

    async def _rules(self, pname: str, dp: T.DesiredPolicy) -> None:
        """Create the missing rules of policy ``pname`` (allows before denies: an attached policy never
        isolates before it allows), then delete the ones no longer wanted."""
        tenant = T.TENANT
        pkey = f"{tenant}:{pname}"
        items, _ = await self.crud.kv.get_prefix(keys.obj_key("rule", f"{pkey}:"))  # this policy's rules
        have = {json.loads(i.value)["ruleId"] for i in items}
        for rid, body in sorted(dp.rules.items(), key=lambda kv: (kv[1]["action"] != "allow", kv[0])):
            if rid in have:
                continue
            rule = dict(body, tenantName=tenant, policyName=pname, ruleId=rid)
            try:
                await self.crud.create_or_update("rule", f"{pkey}:{rid}", rule)
            except ValidationError as exc:
                self._say(f"policy {pname}: rule {rule} left out: {exc}")
        for rid in sorted(have - set(dp.rules)):
            try:
                await self.crud.delete("rule", f"{pkey}:{rid}")
            except NotFoundError:
                pass

    # --- run -------------------------------------------------------------------------------------
    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for inf in self.informers.values():
                tg.create_task(inf.run(), name=f"k8s-informer-{inf.kind}")
            for inf in self.informers.values():
                await inf.synced.wait()
            log.info("kubernetes: initial lists loaded; reconciling")
            self.rec.mark_synced()
            tg.create_task(self.rec.run(), name="k8s-reconciler")
            tg.create_task(self._resync(), name="k8s-resync")

    async def _resync(self) -> None:
        """Every ``resync`` seconds converge every key again: a contiv object changed or removed
        through the REST API behind the watcher's back is put back (events alone would not)."""
        while True:
            await asyncio.sleep(self.resync)
            for ns in sorted(self.cache.namespaces()):
                self.rec.enqueue("ns/" + ns)
            for ns, name in sorted(self.cache.kind("Service")):
                self.rec.enqueue(f"svc/{ns}/{name}")
            self.rec.enqueue("gc")


def _target(rule: dict) -> bool:
    """The rule names a member of the group (a selected pod), not the whole group."""
    return bool(rule.get("toIpAddress") if rule.get("direction") == "in" else rule.get("fromIpAddress"))


async def run_leader(crud: Any, config_path: str) -> None:
    """The leader's Kubernetes task: load the API config, then watch until cancelled."""
    while True:
        try:
            cfg = k8sapi.load_config(config_path)
        except k8sapi.K8sConfigError as exc:
            log.error("kubernetes: %s", exc)
            cfg = None
        if cfg is not None:
            break
        log.error(
            "kubernetes: no Kubernetes API configured (%s has no K8S_API_SERVER and there is no "
            "service account); retrying in 30s",
            config_path,
        )
        await asyncio.sleep(30)
    log.info("kubernetes: watching %s (config: %s)", cfg.server, cfg.source)
    client = k8sapi.KubeClient(cfg)
    try:
        await K8sWatcher(crud, client, resync=resync_period(dict(os.environ))).run()
    finally:
        await client.close()


__all__ = ["K8sWatcher", "run_leader", "ContivError"]
