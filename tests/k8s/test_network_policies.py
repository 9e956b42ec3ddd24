"""The rendered NetworkPolicies, evaluated as the API defines them (a pod selected by a policy
of a type allows only what some rule of those policies allows, on both ends): inside the
namespace exactly the edges of the service graph are open, and otherwise only DNS, the
metrics ports to Prometheus' namespace, PostgreSQL for the event store's users, and the
gateway to callers from anywhere."""

from __future__ import annotations

from dataclasses import dataclass, field

from drape.services.table import MODEL_SERVER, SERVICES, WEB, grpc_port
from tests.k8s.test_manifests import _render
from tools.k8s_manifests import JOB_CALLS, JOB_EVENT_STORE, MONITORING_NAMESPACE, POSTGRES_PORT


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict = field(hash=False)
    name: str = ""


OUTSIDE = Pod("", {}, "a database or host outside the cluster")


def _selects(selector: dict, labels: dict) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        value, op = labels.get(expression["key"]), expression["operator"]
        if op == "In" and value not in expression["values"]:
            return False
        if op == "NotIn" and value in expression["values"]:
            return False
        if op == "Exists" and value is None:
            return False
    return True


def _peer_matches(peer: dict, pod: Pod, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        return pod is OUTSIDE
    if pod is OUTSIDE:
        return False
    if "namespaceSelector" in peer:
        namespace_ok = _selects(
            peer["namespaceSelector"], {"kubernetes.io/metadata.name": pod.namespace}
        )
    else:
        namespace_ok = pod.namespace == policy_namespace
    return namespace_ok and _selects(peer.get("podSelector", {}), pod.labels)


def _rule_allows(rule: dict, key: str, peer: Pod, port: int, protocol: str, namespace: str) -> bool:
    ports = rule.get("ports")
    if ports and not any(
        p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports
    ):
        return False
    peers = rule.get(key)
    return not peers or any(_peer_matches(p, peer, namespace) for p in peers)


def _side_allows(
    policies: list[dict], kind: str, pod: Pod, peer: Pod, port: int, protocol: str
) -> bool:
    if pod is OUTSIDE or pod.namespace != "drape":
        return True  # not governed by these policies
    selecting = [p for p in policies if kind in p["spec"]["policyTypes"]
                 and _selects(p["spec"]["podSelector"], pod.labels)]  # fmt: skip
    if not selecting:
        return True
    key = "from" if kind == "Ingress" else "to"
    return any(_rule_allows(rule, key, peer, port, protocol, "drape")
               for p in selecting for rule in p["spec"].get(kind.lower(), []))  # fmt: skip


def allowed(
    policies: list[dict], source: Pod, target: Pod, port: int, protocol: str = "TCP"
) -> bool:
    return _side_allows(policies, "Egress", source, target, port, protocol) and _side_allows(
        policies, "Ingress", target, source, port, protocol
    )


def _drape_pods(docs: list[dict]) -> dict[str, Pod]:
    pods = {}
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if "template" in spec:
            labels = spec["template"]["metadata"]["labels"]
            pods[labels["app.kubernetes.io/name"]] = Pod("drape", labels, doc["metadata"]["name"])
    return pods


def test_exactly_the_service_graph_is_open_inside_the_namespace():
    docs = _render("k8s/base")
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    pods = _drape_pods(docs)
    assert set(pods) >= {*SERVICES, MODEL_SERVER.name, *JOB_CALLS, *JOB_EVENT_STORE}
    edges = {(caller, callee) for caller, e in SERVICES.items() for callee in e.calls}
    edges |= {(job, callee) for job, callees in JOB_CALLS.items() for callee in callees}
    edges |= {(WEB.name, callee) for callee in WEB.calls}
    rogue = Pod("drape", {"app.kubernetes.io/name": "rogue"}, "a pod nobody declared")
    for target in [*SERVICES, MODEL_SERVER.name]:
        port = grpc_port(target)
        for source in [*pods, "rogue"]:
            if source == target:
                continue
            expected = (source, target) in edges
            got = allowed(policies, pods.get(source, rogue), pods[target], port)
            assert got == expected, f"{source} -> {target}:{port}: {'open' if got else 'closed'}"
    # A pod that is no service reaches nothing but DNS.
    dns = Pod("kube-system", {"k8s-app": "kube-dns"}, "kube-dns")
    assert allowed(policies, rogue, dns, 53, "UDP") and allowed(policies, rogue, dns, 53, "TCP")
    assert not allowed(policies, rogue, OUTSIDE, 443)
    for pod in pods.values():
        assert allowed(policies, pod, dns, 53, "UDP"), pod.name


def test_from_outside_the_namespace_only_the_gateway_metrics_and_the_database():
    docs = _render("k8s/base")
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    pods = _drape_pods(docs)
    storefront = Pod("shop", {"app": "storefront-backend"}, "a storefront backend")
    prometheus = Pod(MONITORING_NAMESPACE, {"app.kubernetes.io/name": "prometheus"}, "prometheus")
    assert allowed(policies, storefront, pods["gateway"], grpc_port("gateway"))
    for name, entry in SERVICES.items():
        assert allowed(policies, prometheus, pods[name], entry.metrics_port), name
        assert not allowed(policies, storefront, pods[name], entry.metrics_port), name
        if name != "gateway":
            assert not allowed(policies, storefront, pods[name], entry.grpc_port), name
    assert allowed(policies, prometheus, pods[MODEL_SERVER.name], MODEL_SERVER.metrics_port)
    # The web front (JSON API, preview URLs, its /metrics) on its one port, from anywhere.
    assert allowed(policies, storefront, pods[WEB.name], WEB.http_port)
    assert allowed(policies, prometheus, pods[WEB.name], WEB.http_port)
    assert not allowed(policies, storefront, pods[WEB.name], grpc_port("gateway"))
    store_users = {n for n, e in SERVICES.items() if e.event_store} | {WEB.name, *JOB_EVENT_STORE}
    for name, pod in pods.items():
        assert allowed(policies, pod, OUTSIDE, POSTGRES_PORT) == (name in store_users), name
