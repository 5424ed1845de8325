"""Where the trainer's checkpoint files live.

Without a feature store there is one file, ``<data dir>/checkpoints/<prefix>.npz``,
replaced atomically.  With a store each checkpoint is a new versioned file
``<prefix>-v<NNNNNN>.npz`` registered in the store, ``<prefix>.npz`` is a symlink to the
newest (replicas read it), and only the newest :data:`KEEP_CHECKPOINTS` files are kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamrec.model import read_header
from streamrec.settings import Settings

#: Versioned checkpoint files kept (with a store).
KEEP_CHECKPOINTS = 3


def checkpoint_path(settings: Settings) -> Path:
    """The newest checkpoint (with a store: a link to the newest versioned file)."""
    return settings.data_dir / "checkpoints" / f"{settings.topic_prefix}.npz"


def versioned_checkpoint_path(settings: Settings, version: int) -> Path:
    return settings.data_dir / "checkpoints" / f"{settings.topic_prefix}-v{version:06d}.npz"


def versioned_files(settings: Settings) -> list[Path]:
    """This prefix's versioned checkpoint files, oldest first."""
    folder = checkpoint_path(settings).parent
    return sorted(folder.glob(f"{settings.topic_prefix}-v[0-9][0-9][0-9][0-9][0-9][0-9].npz"))


def next_file_version(settings: Settings, registered: int) -> int:
    """The version after ``registered`` and after every file on disk.

    A data directory reused with another database (another registry) keeps its files.
    """
    files = versioned_files(settings)
    on_disk = int(files[-1].stem.rsplit("-v", 1)[1]) if files else 0
    return max(registered, on_disk) + 1


def link_newest(settings: Settings, target: Path) -> None:
    """Point :func:`checkpoint_path` at ``target`` atomically; drop all but the newest files."""
    link = checkpoint_path(settings)
    tmp = link.with_name(link.name + ".tmp-link")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target.name)
    tmp.replace(link)
    for old in versioned_files(settings)[:-KEEP_CHECKPOINTS]:
        old.unlink(missing_ok=True)


def checkpoint_extra(path: Path) -> dict[str, Any]:
    """The ``extra`` header of a checkpoint: offsets, deltas offset, item attributes."""
    extra = read_header(path).get("extra", {})
    return extra if isinstance(extra, dict) else {}
