"""Training on the cluster's training operator: what the train task sends, and what each worker runs.

The train task puts the prepared index (small: the table, the window index, the audit) into the run's working
data, launches a job of ``workers`` processes (a Kubeflow Trainer ``TrainJob`` or a training-operator
``PyTorchJob``, :mod:`auscult.training_job`), waits for it, and takes the model the first worker wrote back. Each
worker runs ``python -m auscult.stages.train_worker``: it joins the others (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT`` come from the operator, or from torchrun), fetches the index and only the
window shards it reads, and trains its share of every batch (:func:`auscult.stages.train.fit`), on its GPU with
NCCL where it has one, on CPU with gloo where not.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from auscult import layout, working
from auscult.progress import Note, emit
from auscult.stages.prep import AUDIT_FILE, INDEX_FILE, SHARDS_FILE, TABLE_FILE, Prepared
from auscult.stages.train import GROUP_TIMEOUT, TrainConfig, TrainResult, fit
from auscult.store import ObjectStore, open_store, secret_env

PREPARED_FILES = (TABLE_FILE, INDEX_FILE, AUDIT_FILE, SHARDS_FILE)
MODULE = "auscult.stages.train_worker"


def send_inputs(store: ObjectStore, run_id: str, prepared_folder: str | Path) -> None:
    """The prepared index into the run's working data, where the workers read it. Window files that are not in
    the store yet (prepared on this machine) go there too, so that every worker can fetch them."""
    folder = Path(prepared_folder)
    where = json.loads((folder / SHARDS_FILE).read_text())
    count = len(where["windows"])
    for shard, entry in enumerate(where["windows"]):
        if "://" not in entry:
            key = layout.run_windows(run_id, shard, count)
            where["windows"][shard] = working.publish(store, run_id, key, folder / entry)
    for name in PREPARED_FILES:
        key = layout.training_input(run_id) + name
        if name == SHARDS_FILE:
            working.begin(store, run_id)
            store.put(key, json.dumps(where).encode())
        else:
            working.publish(store, run_id, key, folder / name)


def worker_arguments(store_uri: str, run_id: str, config: TrainConfig) -> list[str]:
    """The command line after ``python -m auscult.stages.train_worker``."""
    guard = "--guard-channel" if config.guard_channel else "--no-guard-channel"
    return ["--store", store_uri, "--run-id", run_id, "--epochs", str(config.epochs), "--seed", str(config.seed), guard]


def take_result(store: ObjectStore, run_id: str, folder: str | Path) -> TrainResult:
    """The model the first worker wrote, copied into ``folder`` (the train task's output)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = layout.training_output(run_id)
    found = store.list(prefix)
    if not found:
        raise RuntimeError(f"the training job ended without writing a model to {store.uri(prefix)}")
    for key in found:
        name = key[len(prefix) :]
        if "/" in name or name in ("", ".", ".."):
            raise RuntimeError(f"unexpected object {store.uri(key)} among the training job's output")
        (folder / name).write_bytes(store.get(key))
    return TrainResult.load(folder)


def train_on_cluster(
    prepared_folder: str | Path,
    config: TrainConfig,
    workers: int,
    store_uri: str,
    run_id: str,
    launch: dict,
    image: str,
    model_folder: str | Path,
    log: Callable[[str], None] = emit,
) -> TrainResult:
    """The train task's side: send the inputs, run ``workers`` workers as the job ``launch`` names (its
    ``operator``, service account, store Secret, GPUs, placement, timeout), and take the model they wrote."""
    from auscult.cluster import Cluster
    from auscult.training_job import OPERATORS, DistributedJob, job_name, run_job

    store = open_store(store_uri)
    send_inputs(store, run_id, prepared_folder)
    timeout_s = int(launch.get("timeout_s", 6 * 3600))
    job = DistributedJob(
        name=job_name(run_id),
        image=image,
        module_args=worker_arguments(store_uri, run_id, config),
        workers=workers,
        gpus_per_worker=int(launch.get("gpus_per_worker", 1)),
        env=tuple(secret_env(launch["store_secret"])),
        service_account=launch["service_account"],
        node_selector=dict(launch.get("node_selector", {})),
        tolerations=tuple(launch.get("tolerations", [])),
        # The operator ends the job on its own if the watching task dies.
        deadline_s=timeout_s + 600,
    )
    cluster = Cluster.from_environment(launch.get("namespace", ""))
    log(str(Note("train", f"launching {workers} workers as a {launch['operator']} ({MODULE}) in {cluster.namespace}")))
    run_job(cluster, OPERATORS[launch["operator"]](job), float(timeout_s), log=log)
    return take_result(store, run_id, model_folder)


def work(
    store: ObjectStore, run_id: str, config: TrainConfig, progress: Callable[[str], None] = emit
) -> TrainResult | None:
    """One worker's part: join the group (when there are several), train, and, as the first worker, write the
    result to the run's working data."""
    import torch
    import torch.distributed as dist

    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1:
        backend = "nccl" if cuda else "gloo"
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world, timeout=GROUP_TIMEOUT)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            inputs = Path(scratch) / "prepared"
            inputs.mkdir()
            for name in PREPARED_FILES:
                (inputs / name).write_bytes(store.get(layout.training_input(run_id) + name))
            result = fit(Prepared.load(inputs), config, progress, rank=rank, world=world, device=device)
            if result is not None:
                out = Path(scratch) / "model"
                result.save(out)
                for path in sorted(out.iterdir()):
                    working.publish(store, run_id, layout.training_output(run_id) + path.name, path)
            return result
    finally:
        if world > 1:
            dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description="One worker of a distributed training job (started by the train task through the cluster's "
        "training operator; RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT come from the operator or torchrun).",
    )
    parser.add_argument("--store", required=True, help="the object store of the run (s3://bucket or file://...)")
    parser.add_argument("--run-id", required=True, help="the pipeline run whose working data holds the inputs")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--guard-channel", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    config = TrainConfig(epochs=args.epochs, seed=args.seed, guard_channel=args.guard_channel)
    work(open_store(args.store), args.run_id, config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
