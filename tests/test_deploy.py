"""The deployment files: they parse, they run as non-root, their probes and config match the service."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alertmanager_wecom.config import ConfigError
from alertmanager_wecom.loading import parse_config

ROOT = Path(__file__).resolve().parents[1]


def test_dockerfile_runs_as_non_root_and_serves() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "USER 10001" in text and "/healthz" in text and '"serve"' in text


def test_kubernetes_manifests() -> None:
    docs = list(
        yaml.safe_load_all((ROOT / "deploy/kubernetes/alertmanager-wecom.yaml").read_text(encoding="utf-8"))
    )
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Secret", "ConfigMap", "PersistentVolumeClaim", "Deployment", "Service"}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert kinds["Deployment"]["spec"]["replicas"] == 1
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    config = yaml.safe_load(kinds["ConfigMap"]["data"]["config.yaml"])
    assert Path(config["storage"]["path"]).parent.as_posix() in mounts
    secret_keys = set(kinds["Secret"]["stringData"])
    # The reload sidecar sees the config map change (a directory mount, not a subPath, which never
    # changes) and POSTs /-/reload on this pod with the admin password from the Secret.
    config_mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert "subPath" not in config_mount
    assert container["args"][2].startswith(config_mount["mountPath"] + "/")
    sidecar = next(c for c in pod["containers"] if c["name"] == "config-reload")
    assert f"--volume-dir={config_mount['mountPath']}" in sidecar["args"]
    assert "--webhook-url=http://admin:$(ADMIN_PASSWORD)@127.0.0.1:9095/-/reload" in sidecar["args"]
    password = sidecar["env"][0]["valueFrom"]["secretKeyRef"]["key"]
    assert password == Path(config["server"]["admin_auth"]["basic_auth"]["password_file"]).name
    for path in (
        config["apps"]["ops"]["secret_file"],
        config["robots"]["sre"]["key_file"],
        config["server"]["auth"]["bearer_token_file"],
        config["server"]["admin_auth"]["basic_auth"]["password_file"],
    ):
        assert Path(path).name in secret_keys


@pytest.mark.parametrize("source", ["deploy/config.example.yaml", "kubernetes"])
def test_shipped_configs_are_valid_once_secrets_exist(source: str, tmp_path: Path) -> None:
    if source == "kubernetes":
        docs = yaml.safe_load_all(
            (ROOT / "deploy/kubernetes/alertmanager-wecom.yaml").read_text(encoding="utf-8")
        )
        text = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["config.yaml"]
    else:
        text = (ROOT / source).read_text(encoding="utf-8")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("ops-secret", "robot-key", "webhook-token", "admin-password"):
        (secrets / name).write_text(f"value-of-{name}\n", encoding="utf-8")
    raw = yaml.safe_load(text.replace("/etc/alertmanager-wecom/secrets", str(secrets)))
    config = parse_config(raw)
    assert config.apps["ops"].secret.reveal() == "value-of-ops-secret"
    assert config.server.auth is not None and config.server.admin_auth is not None
    with pytest.raises(ConfigError, match="cannot read"):
        parse_config(yaml.safe_load(text))  # without the secret files it refuses to start


def test_systemd_unit() -> None:
    text = (ROOT / "deploy/systemd/alertmanager-wecom.service").read_text(encoding="utf-8")
    assert "ExecStart=/usr/local/bin/alertmanager-wecom serve --config" in text
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text and "DynamicUser=yes" in text


def test_kubernetes_replicas_on_redis() -> None:
    docs = list(
        yaml.safe_load_all(
            (ROOT / "deploy/kubernetes/alertmanager-wecom-replicas.yaml").read_text(encoding="utf-8")
        )
    )
    kinds = [d["kind"] for d in docs]
    assert kinds.count("Deployment") == 1 and "PodDisruptionBudget" in kinds and "StatefulSet" in kinds
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 3
    budget = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 2
    redis_conf = next(
        d
        for d in docs
        if d.get("metadata", {}).get("name") == "alertmanager-wecom-redis" and d["kind"] == "ConfigMap"
    )
    assert "appendfsync always" in redis_conf["data"]["redis.conf"]
    text = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "alertmanager-wecom")
    raw = yaml.safe_load(text["data"]["config.yaml"])
    secrets = {"ops-secret", "webhook-token", "admin-password", "redis-password"}
    assert secrets == set(next(d for d in docs if d["kind"] == "Secret")["stringData"])
    for key in ("secret_file",):
        raw["apps"]["ops"][key.removesuffix("_file")] = "x"
        del raw["apps"]["ops"][key]
    raw["server"]["auth"] = {"bearer_token": "x"}
    raw["server"]["admin_auth"]["basic_auth"] = {"username": "admin", "password": "x"}
    del raw["storage"]["password_file"]
    config = parse_config(raw)
    assert config.storage.backend == "redis" and config.storage.lease == 3
