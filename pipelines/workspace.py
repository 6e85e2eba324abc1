"""Where a local run keeps everything (the object store, the pipeline root, the keys), without importing kfp:
commands that only read the store start in a moment."""

from __future__ import annotations

import logging
import os
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path

from auscult.pseudonym import PSEUDONYM_KEY_ENV
from auscult.serving import contract


class _ShortLines(logging.Filter):
    """kfp.local logs every output in full (a ROC curve is hundreds of points): keep each line readable."""

    width = 240

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and len(record.msg) > self.width:
            lines = record.msg.splitlines()
            record.msg = "\n".join(line if len(line) <= self.width else line[: self.width] + " ..." for line in lines)
        return True


@dataclass(frozen=True)
class Workspace:
    """Where a local run keeps everything: the object store, the pipeline root, the pseudonym key."""

    root: Path

    @property
    def store_uri(self) -> str:
        return (self.root / "store").resolve().as_uri()

    @property
    def pipeline_root(self) -> Path:
        return self.root / "pipeline-root"

    def keys(self) -> None:
        """Stable keys in the environment, from files made once per workspace (Secrets' job on a cluster): the one
        that pseudonymises participant ids, and the one that signs the model server's request ids."""
        self.root.mkdir(parents=True, exist_ok=True)
        for name, variable in (("pseudonym.key", PSEUDONYM_KEY_ENV), ("feedback.key", contract.ENV_FEEDBACK_KEY)):
            key_file = self.root / name
            if not key_file.exists():
                key_file.write_text(secrets.token_hex(32))
                key_file.chmod(0o600)
            os.environ.setdefault(variable, key_file.read_text().strip())

    def prepare(self) -> None:
        """Create the folders and the keys, and point KFP's local runner at this workspace."""
        self.keys()
        (self.root / "tmp").mkdir(exist_ok=True)
        # The local runner leaves temporary folders behind: keep them inside the workspace.
        os.environ["TMPDIR"] = str((self.root / "tmp").resolve())
        os.environ.setdefault("XDG_CACHE_HOME", str((self.root / "cache").resolve()))
        # Components name the cluster's runtime image; locally they run in this environment, as intended.
        warnings.filterwarnings("ignore", message="You may be attemping to run a task", category=RuntimeWarning)
        root_logger = logging.getLogger()
        if not any(isinstance(f, _ShortLines) for f in root_logger.filters):
            root_logger.addFilter(_ShortLines())
        from kfp import local

        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(self.pipeline_root.resolve()),
            raise_on_error=True,
        )
