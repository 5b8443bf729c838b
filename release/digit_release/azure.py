"""What the Azure ML job submitter (training) and the registry source (the poller) share, without
importing the Azure SDK: the workspace, named by the standard variables, and where a downloaded
model folder keeps its release.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from digit_release.manifest import MANIFEST_NAME

WORKSPACE_VARIABLES = ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZURE_ML_WORKSPACE")


class AzureSetupError(ValueError):
    """The environment or a downloaded folder is not what an Azure ML call needs; the message says why."""


def workspace_from_env(environ: Mapping[str, str] = os.environ) -> tuple[str, str, str]:
    """(subscription, resource group, workspace) from the standard variables, or AzureSetupError naming those unset."""
    missing = [name for name in WORKSPACE_VARIABLES if not environ.get(name, "").strip()]
    if missing:
        raise AzureSetupError(f"set {', '.join(missing)} (the Azure ML workspace)")
    subscription, group, workspace = (environ[name].strip() for name in WORKSPACE_VARIABLES)
    return subscription, group, workspace


def release_folder(root: Path) -> Path:
    """The one folder under `root` holding model.json, however deep the SDK put it.

    `MLClient.models.download` writes `root/<name>/` and, for a folder asset, one level deeper;
    a job's output folder holds the release directly. A link is not followed and not counted.
    """
    root = Path(root)
    found = sorted(
        Path(folder)
        for folder, _dirs, files in os.walk(root)
        if MANIFEST_NAME in files and (Path(folder) / MANIFEST_NAME).is_file()
        and not (Path(folder) / MANIFEST_NAME).is_symlink()
    )  # fmt: skip
    if not found:
        raise AzureSetupError(f"the downloaded model holds no {MANIFEST_NAME}")
    if len(found) > 1:
        where = ", ".join(str(folder.relative_to(root)) for folder in found)
        raise AzureSetupError(f"the downloaded model holds {len(found)} {MANIFEST_NAME} files ({where}), expected one")
    return found[0]
