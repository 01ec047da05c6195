"""deploy/kubernetes/: valid against the Kubernetes schemas (kubernetes-validate, offline, strict),
and consistent with what comfy-init needs of a pod."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from comfy_init.layout import INSTANCE_ID_PATTERN, RESERVED_IDS

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"
STOP_TIMEOUT_DEFAULT = 8


def resources():
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [(path.name, document) for document in yaml.safe_load_all(path.read_text()) if document]
    return found


@pytest.mark.parametrize("name,document", resources(), ids=lambda value: value if isinstance(value, str) else "")
def test_each_resource_validates_strictly(name, document):
    kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)


def _statefulset():
    return next(document for _, document in resources() if document["kind"] == "StatefulSet")


def test_kustomization_lists_every_file():
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        path.name for path in DEPLOY.glob("*.yaml") if path.name != "kustomization.yaml")


def test_instance_ids_come_from_pod_names_and_are_valid():
    statefulset = _statefulset()
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in container["env"]}
    assert env["COMFY_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["COMFY_MULTI_INSTANCE"]["value"] == "true"
    for ordinal in range(statefulset["spec"]["replicas"]):
        pod = f"{statefulset['metadata']['name']}-{ordinal}"
        assert INSTANCE_ID_PATTERN.match(pod) and pod not in RESERVED_IDS


def test_every_instance_has_its_own_service():
    statefulset = _statefulset()
    selected = {document["spec"]["selector"].get("statefulset.kubernetes.io/pod-name")
                for _, document in resources() if document["kind"] == "Service"}
    for ordinal in range(statefulset["spec"]["replicas"]):
        assert f"{statefulset['metadata']['name']}-{ordinal}" in selected
    headless = [document for _, document in resources()
                if document["kind"] == "Service" and document["spec"].get("clusterIP") == "None"]
    assert [service["metadata"]["name"] for service in headless] == [statefulset["spec"]["serviceName"]]


def test_pod_stops_gracefully_is_probed_by_health_and_mounts_a_shared_volume():
    statefulset = _statefulset()
    pod = statefulset["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    stop_timeout = float(env.get("COMFY_STOP_TIMEOUT", STOP_TIMEOUT_DEFAULT))
    assert pod["terminationGracePeriodSeconds"] >= stop_timeout + 5, "room to release the claim after the stop"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"] == ["comfy-init", "health"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["securityContext"]["runAsUser"] != 0 and pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
    claim = pod["volumes"][0]["persistentVolumeClaim"]["claimName"]
    volume = next(document for _, document in resources() if document["kind"] == "PersistentVolumeClaim")
    assert volume["metadata"]["name"] == claim and volume["spec"]["accessModes"] == ["ReadWriteMany"]
    assert container["volumeMounts"][0]["mountPath"] == env["COMFY_DATA_DIRECTORY"]
