"""What components/policy makes of the prod overlay: the Secret clipmesh-policy mounted
read-only, as a directory, into the orchestrator, previs and the generator (and nothing else),
each of them told where its `policy.yaml` lies, the public API's readers with tokens beside
it; dev and the base without it; and policy.example.yaml, the documented example beside the
component, a policy the services accept.

Reloading the policy and what it grants run for real in the services' tests; the network
flows the tenancy features use (orchestrator to generator, generator webhooks to the
internet) are checked in test_network_policies.py.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pytest
import yaml

from clipmesh.runtime.policy import parse_policy
from tests.deploy.conftest import _build
from tests.deploy.manifests import (
    BASE,
    DEV,
    K8S_DIR,
    PROD,
    Manifest,
    component,
    containers,
    describe,
    mount_holding,
    pod_spec,
    settings_of,
    volume_of_mount,
    workload_of,
    workloads,
)

COMPONENT_DIR = K8S_DIR / "components" / "policy"
EXAMPLE = COMPONENT_DIR / "policy.example.yaml"
README = K8S_DIR / "README.md"
SECRET = "clipmesh-policy"
KEY = "policy.yaml"
MOUNT = "/var/run/secrets/clipmesh/policy"
READERS = {"orchestrator", "previs", "generator"}
PUBLIC = {"orchestrator", "previs"}  # they tell callers apart by token


@pytest.fixture(scope="module")
def prod() -> list[Manifest]:
    return _build(PROD)


def policy_setting(component_name: str) -> str:
    return f"CLIPMESH_{component_name.upper()}_POLICY_FILE"


def policy_volumes(workload: Manifest) -> list[dict]:
    """The pod's volumes of the Secret clipmesh-policy."""
    return [
        volume
        for volume in pod_spec(workload).get("volumes", [])
        if volume.get("secret", {}).get("secretName") == SECRET
    ]


def test_prod_readers_find_the_policy_file_in_the_mounted_secret(prod: list[Manifest]) -> None:
    for name in sorted(READERS):
        workload = workload_of(prod, name)
        [container] = containers(workload)
        path = settings_of(prod, container).get(policy_setting(name))
        assert path == f"{MOUNT}/{KEY}", f"{name}: {policy_setting(name)} is {path!r}"
        mount = mount_holding(container, path)
        assert mount is not None and mount["mountPath"] == MOUNT, f"{name}: not mounted"
        secret = volume_of_mount(workload, mount)["secret"]
        assert secret["secretName"] == SECRET, name
        # The file's name is the Secret's key: no `items` renaming it, no optional Secret
        # (a service must never start without the policy it was told to enforce).
        assert PurePosixPath(path).relative_to(MOUNT) == PurePosixPath(KEY)
        assert "items" not in secret and not secret.get("optional"), name


def test_the_policy_is_mounted_read_only_and_never_by_sub_path(prod: list[Manifest]) -> None:
    """A Secret mounted as a directory is updated in place; through subPath it never is, and
    policy edits would not reach the pod until it restarts."""
    for name in sorted(READERS):
        workload = workload_of(prod, name)
        [container] = containers(workload)
        [volume] = policy_volumes(workload)
        mounts = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
        assert len(mounts) == 1, f"{name}: the policy is mounted {len(mounts)} times"
        [mount] = mounts
        assert mount.get("readOnly") is True, f"{name}: the policy is writable"
        assert "subPath" not in mount and "subPathExpr" not in mount, f"{name}: by subPath"
        assert volume["secret"]["defaultMode"] == 0o440, name


def test_only_the_services_that_read_a_policy_get_it(prod: list[Manifest]) -> None:
    """The encoder and the index are internal and read no policy: they refuse the setting,
    and their pods have no business holding the webhook secrets."""
    for workload in workloads(prod):
        name = component(workload)
        reads = name in READERS
        assert bool(policy_volumes(workload)) == reads, describe(workload)
        for container in containers(workload):
            settings = settings_of(prod, container)
            assert any(key.endswith("_POLICY_FILE") for key in settings) == reads, name


def test_the_public_api_enforces_the_policy_on_token_identities(prod: list[Manifest]) -> None:
    """components/policy only together with components/api-tokens: the orchestrator and
    previs refuse a policy without a tokens file."""
    for name in sorted(PUBLIC):
        [container] = containers(workload_of(prod, name))
        settings = settings_of(prod, container)
        assert settings.get(f"CLIPMESH_{name.upper()}_AUTH_TOKENS_FILE"), name
        assert settings.get(policy_setting(name)), name


@pytest.mark.parametrize("path", [BASE, DEV], ids=lambda path: path.name)
def test_dev_and_the_base_run_without_a_policy(path: Path) -> None:
    objects = _build(path)
    for workload in workloads(objects):
        assert not policy_volumes(workload), describe(workload)
        for container in containers(workload):
            settings = settings_of(objects, container)
            assert not any(key.endswith("_POLICY_FILE") for key in settings), describe(workload)


def test_the_readme_creates_the_secret_and_key_the_pods_read() -> None:
    commands = re.findall(
        r"create secret generic (\S+) --from-file=([^=\s]+)=", README.read_text(encoding="utf-8")
    )
    assert (SECRET, KEY) in commands, commands


def test_the_example_policy_is_documentation_only() -> None:
    """Not a resource, patch or generated file of the component: a committed policy would
    carry real webhook secrets into the repository."""
    kustomization = yaml.safe_load((COMPONENT_DIR / "kustomization.yaml").read_text())
    assert EXAMPLE.name not in yaml.safe_dump(kustomization)


def test_the_example_policy_parses_with_placeholder_secrets() -> None:
    policy = parse_policy(EXAMPLE.read_text(encoding="utf-8"), str(EXAMPLE))
    assert policy.enforced and policy.callers
    assert any(caller.admin for caller in policy.callers.values())
    secrets = [key for caller in policy.callers.values() for key in caller.webhook_secrets]
    assert secrets, "the example shows no webhook secret"
    for key in secrets:
        # All zero bytes: obviously not a secret anyone uses, yet long enough to parse.
        assert key == bytes(len(key)), "a webhook secret that is not a placeholder"
    assert not policy.webhooks.allow_private_networks, "the network policy refuses those"
