"""`dir:PATH`: a folder of release folders (`PATH/model-v3/model.json`, ...), for air-gapped sites and local use."""

from __future__ import annotations

import shutil
from pathlib import Path

from digit_poller import crashpoints
from digit_poller.sources import (
    MAX_FILE_BYTES,
    RELEASE_FILES,
    BadRelease,
    Release,
    SourceError,
    fingerprint,
)
from digit_release.manifest import tag_version


class DirectorySource:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = f"dir:{self.path}"

    def releases(self) -> list[Release]:
        if not self.path.is_dir():
            raise SourceError(f"{self.path}: no such folder of releases")
        found = []
        for folder in self.path.iterdir():
            version = tag_version(folder.name)
            if version is None or not folder.is_dir():
                continue
            files = {name: folder / name for name in RELEASE_FILES if (folder / name).is_file()}
            stats = {name: path.lstat() for name, path in files.items()}
            found.append(
                Release(
                    version=version,
                    tag=folder.name,
                    assets={name: str(path) for name, path in files.items()},
                    sizes={name: stat.st_size for name, stat in stats.items()},
                    # a file rewritten in place gets a new mtime: a remembered verdict then lapses
                    fingerprint=fingerprint({name: (s.st_size, s.st_mtime_ns, s.st_ino) for name, s in stats.items()}),
                )
            )
        return sorted(found, key=lambda release: release.version, reverse=True)

    def download(self, release: Release, dest: Path) -> None:
        for name, location in release.assets.items():
            path = Path(location)
            if path.is_symlink():
                raise BadRelease(f"{path}: a symbolic link; a release holds files, not links to elsewhere")
            if path.stat().st_size > MAX_FILE_BYTES:
                raise BadRelease(f"{path}: larger than the {MAX_FILE_BYTES}-byte cap")
            shutil.copyfile(path, Path(dest) / name)
            crashpoints.reached(f"downloaded {name}")
