"""The Kubernetes manifests in deploy/k8s: valid for current Kubernetes versions, all listed in the
kustomization, and in agreement with the app (its CLI, its settings, its probes) and each other."""

import argparse
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from app.core.config import Settings
from app.runtimes.catalog import MODELS
from tests.support.deploy import ROOT, parse_command, run_tool, settings_env_names

K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATION = "kustomization.yaml"
SECRET_TEMPLATE = "secret.example.yaml"
NAMESPACE = "mlops"
# Schemas kubernetes-validate ships offline: the newest, and one a little older.
KUBERNETES_VERSIONS = ["1.35.0", "1.37.0"]
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
CLUSTER_SCOPED = {"Namespace"}

Manifest = dict[str, Any]


def manifest_files() -> list[Path]:
    """Every Kubernetes API object file in deploy/k8s (the kustomization is kustomize's own)."""
    files = sorted(
        path for path in [*K8S.glob("*.yaml"), *K8S.glob("*.yml")] if path.name != KUSTOMIZATION
    )
    assert files, f"no manifests under {K8S}"
    return files


def load_documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def applied_manifests() -> list[Manifest]:
    """What `kubectl apply -k` applies: every manifest but the Secret template."""
    return [
        doc
        for path in manifest_files()
        if path.name != SECRET_TEMPLATE
        for doc in load_documents(path)
    ]


def of_kind(kind: str) -> list[Manifest]:
    return [doc for doc in applied_manifests() if doc["kind"] == kind]


def secret_template() -> Manifest:
    (secret,) = load_documents(K8S / SECRET_TEMPLATE)
    assert secret["kind"] == "Secret"
    return secret


def workloads() -> list[Manifest]:
    return [doc for doc in applied_manifests() if doc["kind"] in WORKLOADS]


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def containers(workload: Manifest) -> list[Manifest]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def command_line(container: Manifest) -> list[str]:
    """The container's argv; the manifests spell it out rather than rely on the image's."""
    assert "command" in container, f"container {container['name']} has no command"
    return [str(part) for part in [*container["command"], *container.get("args", [])]]


def parsed(container: Manifest) -> argparse.Namespace:
    return parse_command(command_line(container))


def containers_running(subcommand: str) -> list[tuple[Manifest, Manifest]]:
    """(workload, container) for every container whose command is `mlops <subcommand>`."""
    found = [
        (workload, container)
        for workload in workloads()
        for container in containers(workload)
        if parsed(container).command == subcommand
    ]
    assert found, f"no container runs `mlops {subcommand}`"
    return found


def port_number(container: Manifest, port: int | str) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    assert port in named, f"container {container['name']} has no port named {port!r}"
    return int(named[port])


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def environment(container: Manifest) -> dict[str, str]:
    """The container's variables: its envFrom ConfigMaps and Secret (the template), then env."""
    configmaps = {doc["metadata"]["name"]: doc.get("data", {}) for doc in of_kind("ConfigMap")}
    secret = secret_template()
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            assert name in configmaps, f"envFrom names a ConfigMap {name!r} not in deploy/k8s"
            env.update(configmaps[name])
        else:
            name = source["secretRef"]["name"]
            assert name == secret["metadata"]["name"], f"envFrom names an unknown Secret {name!r}"
            env.update(secret["stringData"])
    env.update({var["name"]: str(var.get("value", "")) for var in container.get("env", [])})
    return env


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(version: str) -> None:
    files = [str(path.relative_to(ROOT)) for path in manifest_files()]
    result = run_tool("kubernetes-validate", "--strict", "-k", version, *files)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # A kind without a schema is only warned about: it would pass unchecked.
    assert "WARN" not in output, output


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((K8S / KUSTOMIZATION).read_text())
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources)), resources
    expected = {path.name for path in manifest_files()} - {SECRET_TEMPLATE}
    assert set(resources) == expected


def test_every_object_lives_in_the_namespace() -> None:
    (namespace,) = of_kind("Namespace")
    assert namespace["metadata"]["name"] == NAMESPACE
    for doc in [*applied_manifests(), secret_template()]:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]


def test_every_command_is_one_the_cli_accepts() -> None:
    assert workloads()
    for workload in workloads():
        for container in containers(workload):
            parsed(container)  # fails the test if `mlops` would refuse it


def test_every_environment_variable_is_one_the_app_reads() -> None:
    known = settings_env_names()
    for configmap in of_kind("ConfigMap"):
        unknown = set(configmap.get("data", {})) - known
        assert not unknown, f"ConfigMap {configmap['metadata']['name']}: {sorted(unknown)}"
    unknown = set(secret_template()["stringData"]) - known
    assert not unknown, f"Secret template: {sorted(unknown)}"
    for workload in workloads():
        for container in containers(workload):
            unknown = {var["name"] for var in container.get("env", [])} - known
            assert not unknown, f"{workload['metadata']['name']}: {sorted(unknown)}"


def test_every_container_environment_loads_as_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The values parse (numbers, booleans, choices): with the real SECRET_KEY in place of the
    template's placeholder, the settings of every container load."""
    for workload in workloads():
        for container in containers(workload):
            for name in settings_env_names():
                monkeypatch.delenv(name, raising=False)
            env = environment(container) | {"SECRET_KEY": secrets.token_urlsafe(48)}
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            try:
                Settings(_env_file=None)
            except ValidationError as exc:
                pytest.fail(f"{workload['metadata']['name']}/{container['name']}: {exc}")


def test_the_api_probes_health_and_readiness_on_the_port_it_serves() -> None:
    for workload, container in containers_running("serve"):
        args = parsed(container)
        # A server on loopback is unreachable from outside the pod.
        assert args.host == "0.0.0.0"
        assert args.no_migrate, "the migration Job migrates; API replicas must not race it"
        assert args.port in {p["containerPort"] for p in container["ports"]}
        for probe, path in (
            ("startupProbe", "/health"),
            ("livenessProbe", "/health"),
            ("readinessProbe", "/ready"),
        ):
            check = container[probe]["httpGet"]
            assert check["path"] == path, (workload["metadata"]["name"], probe)
            assert port_number(container, check["port"]) == args.port, probe
        env = environment(container)
        assert env.get("WORKER_IN_PROCESS") == "false", "model memory belongs in worker pods"
        assert env.get("ENVIRONMENT") == "production"


def test_the_api_drains_synchronous_predictions() -> None:
    sync_timeout = Settings.model_fields["sync_predict_timeout"].default
    for workload, _ in containers_running("serve"):
        assert pod_spec(workload)["terminationGracePeriodSeconds"] > sync_timeout
        assert workload["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    for ingress in of_kind("Ingress"):
        annotations = ingress["metadata"]["annotations"]
        assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > sync_timeout


def test_workers_expose_and_probe_their_metrics_port() -> None:
    for workload, container in containers_running("worker"):
        name = workload["metadata"]["name"]
        metrics_port = parsed(container).metrics_port
        assert metrics_port is not None, f"{name}: no --metrics-port"
        assert metrics_port in {p["containerPort"] for p in container["ports"]}, name
        liveness = container["livenessProbe"]["httpGet"]
        assert port_number(container, liveness["port"]) == metrics_port, name
        # Unfinished predictions are handed back on SIGTERM: give that time.
        assert pod_spec(workload)["terminationGracePeriodSeconds"] >= 30, name


def test_worker_pools_split_the_models_between_images_that_can_run_them() -> None:
    pools = {
        workload["metadata"]["name"]: (parsed(container).models, container["image"])
        for workload, container in containers_running("worker")
    }
    claimed = [model for models, _ in pools.values() for model in models or MODELS]
    # Every model is served, by exactly one pool: no prediction waits forever or runs twice over.
    assert sorted(claimed) == sorted(MODELS), pools
    for name, (models, image) in pools.items():
        needs_torch = models is None or "distilbert-sst2" in models
        assert image.endswith("-ml") == needs_torch, f"{name}: {image} for {models}"


def test_every_container_has_resources_and_runs_locked_down() -> None:
    for workload in workloads():
        spec = pod_spec(workload)
        pod_context = spec.get("securityContext", {})
        volumes = {volume["name"] for volume in spec.get("volumes", [])}
        for container in containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{where}: {bound}"
            context = {**pod_context, **container.get("securityContext", {})}
            assert context.get("runAsNonRoot") is True, where
            assert context.get("runAsUser") != 0, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            # A read-only root needs a writable /tmp (`mlops serve` keeps metric files there).
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert mounts.get("/tmp") in volumes, f"{where}: no volume at /tmp"  # noqa: S108


def test_the_api_service_hpa_and_pdb_target_the_api_pods() -> None:
    ((api, container),) = containers_running("serve")
    api_name, labels = api["metadata"]["name"], pod_labels(api)
    others = [pod_labels(w) for w in workloads() if w["metadata"]["name"] != api_name]
    assert selects(api["spec"]["selector"]["matchLabels"], labels)

    services = [s for s in of_kind("Service") if selects(s["spec"]["selector"], labels)]
    assert services, "no Service selects the API pods"
    for service in services:
        assert not any(selects(service["spec"]["selector"], other) for other in others)
        for port in service["spec"]["ports"]:
            assert port_number(container, port["targetPort"]) == parsed(container).port

    hpas = of_kind("HorizontalPodAutoscaler")
    api_hpas = [h for h in hpas if h["spec"]["scaleTargetRef"]["name"] == api_name]
    assert len(api_hpas) == 1, "the API Deployment needs one HorizontalPodAutoscaler"
    assert api_hpas[0]["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    assert api_hpas[0]["spec"]["minReplicas"] >= 2

    pdbs = [
        p
        for p in of_kind("PodDisruptionBudget")
        if selects(p["spec"]["selector"]["matchLabels"], labels)
    ]
    assert len(pdbs) == 1, "the API pods need one PodDisruptionBudget"
    assert not any(selects(pdbs[0]["spec"]["selector"]["matchLabels"], o) for o in others)

    service_ports = {
        (s["metadata"]["name"], p.get("name")) for s in services for p in s["spec"]["ports"]
    }
    for ingress in of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert (backend["name"], backend["port"].get("name")) in service_ports, backend


def test_every_autoscaler_targets_a_deployment_here() -> None:
    deployments = {doc["metadata"]["name"] for doc in of_kind("Deployment")}
    targets = set()
    for hpa in of_kind("HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment", target
        assert target["name"] in deployments, target
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        targets.add(target["name"])
    workers = {workload["metadata"]["name"] for workload, _ in containers_running("worker")}
    assert targets & workers, "no HorizontalPodAutoscaler scales the workers"


def test_the_secret_template_holds_only_placeholders() -> None:
    secret = secret_template()
    assert "data" not in secret, "base64 `data` could hide a real value: use stringData"
    values = secret["stringData"]
    assert {"SECRET_KEY", "DATABASE_URL"} <= set(values)
    for name, value in values.items():
        assert "change-me" in value, f"{name} is not a placeholder"
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(environment="production", secret_key=values["SECRET_KEY"], _env_file=None)
