"""The ``auscult`` command line.

Every command ends in one of three ways: its output and exit status 0; one line saying what to fix and
exit status 1 (an :class:`auscult.errors.InputError`, or a pipeline stage that failed, with the log file
that holds the whole story); or, for a fault of ours, one line naming the log file that holds the traceback
and exit status 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

from auscult import __version__
from auscult.serving import contract
from auscult.task import MAX_REGRESSION, MIN_AUROC, MIN_MARGIN_OVER_METADATA, MIN_PARTICIPANTS_PER_CLASS

DEFAULT_WORKDIR = Path(".auscult/run")
LOGS = Path(".auscult/logs")  # where commands without a workdir keep the traceback of a failure


class CommandFailed(Exception):
    """A command could not finish; the message says why and where the full log is."""


def _run(args: argparse.Namespace) -> int:
    from auscult.stages.ingest import parse_source

    # A source that cannot be read fails here, in a second, not minutes later inside a pipeline task.
    for spec in args.source:
        parse_source(spec)

    from pipelines.console import Console, StageFailed
    from pipelines.loop import LoopConfig, log_path, run_loop, summary_lines

    config = LoopConfig(
        workdir=args.workdir,
        sources=tuple(args.source),
        participants=args.participants,
        traffic_participants=args.traffic_participants,
        effect=args.effect,
        epochs=args.epochs,
        seed=args.seed,
        shards=args.shards,
        train_workers=args.train_workers,
        min_auroc=args.min_auroc,
        min_participants_per_class=args.min_participants_per_class,
        min_margin_over_metadata=args.min_margin_over_metadata,
        max_regression=args.max_regression,
        guard_channel=not args.no_channel_guard,
        retrain=not args.no_retrain,
        change_plan=args.change_plan,
    )
    with Console(log_path(args.workdir), verbose=args.verbose) as console:
        console.line(f"auscult {__version__}: full log in {console.log_path}")
        try:
            result = run_loop(config, console)
        except StageFailed as failure:
            raise CommandFailed(str(failure)) from None
        except Exception:
            console.log.write(traceback.format_exc())
            raise CommandFailed(f"{_last_line(traceback.format_exc())} (full log: {console.log_path})") from None
        console.line("")
        console.lines(summary_lines(result, stages=False))
    return 0


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def _generate(args: argparse.Namespace) -> int:
    from auscult import synth

    if args.shifted and args.confound is not None:
        raise CommandFailed("--shifted and --confound choose the devices in two different ways: give one of them")
    spec = synth.CohortSpec(
        participants=args.participants,
        seed=args.seed,
        effect=args.effect,
        defect_rate=args.defect_rate,
        shifted=args.shifted,
        positive_fraction=args.positive_fraction,
        confound=args.confound,
    )
    counts = synth.generate(args.folder, spec)
    print(
        f"wrote {counts['files']} files for {counts['participants']} participants to {args.folder}: "
        f"{counts['positive']} positive, {counts['negative']} negative, {counts['unusable_label']} without a usable "
        f"label, {counts['defective']} defective files"
    )
    return 0


def _placement(args: argparse.Namespace):
    from pipelines.placement import Placement

    default = Placement()
    return Placement(
        gpu_node_selector=dict(args.gpu_node_selector) or default.gpu_node_selector,
        gpu_tolerations=tuple({"key": key, "operator": "Exists", "effect": "NoSchedule"} for key in args.gpu_toleration)
        or default.gpu_tolerations,
        store_secret=args.store_secret,
        pseudonym_secret=args.pseudonym_secret,
        feedback_secret=args.feedback_secret,
        service_account=args.service_account,
        shard_parallelism=args.shard_parallelism,
        training_operator=args.training_operator or "",
        training_gpus_per_worker=args.training_gpus_per_worker,
        training_service_account=args.training_service_account,
    )


def _images(args: argparse.Namespace):
    from pipelines.compile import Images

    return Images(runtime=args.image, training=args.training_image, serving=args.serving_image)


def _compile(args: argparse.Namespace) -> int:
    from pipelines.compile import compile_pipelines

    for path in compile_pipelines(args.output_dir, _images(args), _placement(args)):
        print(f"wrote {path}")
    print("Upload auscult-training.yaml in the KFP UI (Pipelines > Upload pipeline) and start a run.")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from auscult.stages.ingest import DEFAULT_SOURCES
    from pipelines.submit import Submission, plan, submit

    if not args.upload_only and not args.store:
        raise SystemExit("auscult submit: --store is required to start a run (or pass --upload-only)")
    arguments = {"store_uri": args.store, "sources": args.source or list(DEFAULT_SOURCES), "epochs": args.epochs}
    if args.change_plan:
        arguments["change_plan"] = args.change_plan
    submission = Submission(
        host=args.host,
        arguments=arguments,
        run=not args.upload_only,
        monitor_schedule=args.schedule,
        images=_images(args),
        placement=_placement(args),
        **({"version": args.version} if args.version else {}),
    )
    for step in plan(submission):
        print(("would " if args.dry_run else "") + step)
    if args.dry_run:
        return 0
    for name, value in submit(submission).items():
        print(f"{name}: {value}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from auscult.errors import InputError
    from auscult.registry import Registry
    from auscult.serving import server
    from auscult.stages.deploy import what_it_is
    from auscult.store import open_store
    from pipelines.workspace import Workspace

    workspace = Workspace(args.workdir)
    workspace.keys()  # the ones the workspace's pipeline runs used: telemetry pseudonyms must match ingest's
    store_uri = args.store or workspace.store_uri
    registry = Registry(open_store(store_uri))
    if args.version and args.version not in registry.versions():
        raise InputError(f"{store_uri} has no version {args.version!r} (it has: {registry.versions() or 'none'})")
    if not args.version and registry.production() is None:
        raise InputError(f"{store_uri} has no production model: run `auscult run` first, or name a --version")
    version = args.version or registry.production()["version"]
    print("\n".join(what_it_is(registry.card(version))))
    running = server.start(store_uri, args.workdir / "logs" / "server.log", args.version, http_port=args.port)
    print(f"serving {store_uri} at {running.url}/api/v1.0/predictions (Ctrl-C stops it; log: {running.log_path})")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        running.process.wait()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        running.stop()
    return 0


def _upload(args: argparse.Namespace) -> int:
    from auscult.stages.ingest import upload

    if not args.destination.startswith("s3://"):
        print(f"auscult upload: {args.destination!r} is not an s3://bucket/prefix", file=sys.stderr)
        return 2
    done = upload(args.folder, args.destination, progress=lambda line: print(line, file=sys.stderr))
    for reason in done.refused:
        print(f"  not copied: {reason}")
    print(f"{done.copied} files copied, {done.unchanged} already there, {len(done.refused)} not copied")
    print(f"give the pipeline this source: {done.source}")
    return 1 if done.refused else 0


def _predict(args: argparse.Namespace) -> int:
    import json
    import urllib.error

    from auscult.serving import client
    from auscult.task import CLASSES

    try:
        data = args.file.read_bytes()
    except OSError as error:
        print(f"auscult predict: cannot read {args.file}: {error.strerror or error}", file=sys.stderr)
        return 2
    url = args.url.rstrip("/")
    try:
        answer = client.predict_file(url, data, dict(args.tag))
    except client.ServingError as error:
        print(f"auscult predict: the server refused {args.file}: {error}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        print(f"auscult predict: nothing answers at {url} ({reason}): start one with `auscult serve`", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    tags = answer["meta"]["tags"]
    probabilities = answer["data"]["ndarray"][0]
    print(", ".join(f"{name} {p:.3f}" for name, p in zip(CLASSES, probabilities, strict=True)))
    print(f"model {tags['model_version']}, request {tags['request_id']}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from auscult.evaluate import evaluate, report_html, summary_lines
    from auscult.registry import Registry
    from auscult.stages.ingest import parse_source
    from auscult.store import open_store
    from pipelines.console import Console

    for spec in args.source:
        parse_source(spec)
    registry = Registry(open_store(args.store or (args.workdir / "store").resolve().as_uri()))
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    with Console(args.workdir / "logs" / f"evaluate-{stamp}.log") as console:
        with console.native_errors_to_log():
            result = evaluate(
                registry,
                args.source,
                args.version,
                bootstrap=args.bootstrap,
                min_participants_per_class=args.min_participants_per_class,
                progress=console.hear,
            )
        report = args.report or args.workdir / "evaluations" / f"{result.version}-{stamp}.html"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(report_html(result))
        console.lines([*summary_lines(result), f"report: {report}"])
    return 0


def _monitor(args: argparse.Namespace) -> int:
    from auscult import layout
    from auscult.registry import Registry
    from auscult.stages.monitor import monitor, record_decision, report_html
    from auscult.store import open_store

    registry = Registry(open_store(args.store))
    result = monitor(registry)
    decision = record_decision(registry, result)
    report = registry.store.put(layout.monitor_report(datetime.now(UTC)), report_html(result).encode())
    print(
        f"{'RETRAIN' if result.retrain else 'keep'}: {result.model_version or 'no production model'}, "
        f"{result.requests} requests, {result.feedback} feedback labels"
    )
    for reason in result.reasons:
        print(f"  {reason}")
    print(f"decision: {decision}\nreport: {report}")
    return 0


def _store_uri(args: argparse.Namespace) -> str:
    """The store a command works on: --store, or the one of the local run's workdir."""
    from pipelines.workspace import Workspace

    return args.store or Workspace(args.workdir).store_uri


def _registry(args: argparse.Namespace):
    from auscult.registry import Registry
    from auscult.store import open_store

    return Registry(open_store(_store_uri(args)))


def _lineage(args: argparse.Namespace) -> int:
    import json

    from auscult import trace

    registry = _registry(args)
    shown = None if args.all else 20
    if args.request_id:
        found = trace.request_trace(registry, args.request_id)
        lines = trace.request_lines(found, shown)
    elif args.version:
        found = trace.model_trace(registry, args.version)
        lines = trace.model_lines(found, shown)
    else:
        found = trace.recording_trace(registry, args.recording)
        lines = trace.recording_lines(found)
    print(json.dumps(found, indent=1) if args.json else "\n".join(lines))
    return 0


def _cluster_for(registry, version: str, args: argparse.Namespace):
    """The cluster to roll ``version`` out on: where deploy would have, unless --no-rollout or deploy only rendered."""
    from auscult.cluster import Cluster
    from auscult.stages.deploy import serving_record

    recorded = serving_record(registry, version)
    if args.no_rollout or not recorded.get("rollout"):
        return None
    return Cluster.from_environment(recorded["spec"]["namespace"])


def _approve(args: argparse.Namespace) -> int:
    from auscult.lineage import actor
    from auscult.stages.deploy import approve

    registry = _registry(args)
    cluster = _cluster_for(registry, args.version, args) if args.version in registry.versions() else None
    pointer = approve(registry, args.version, actor(args.by), args.reason, cluster)
    print(f"production is now {pointer['version']} (previous: {pointer['previous']})")
    return 0


def _reject(args: argparse.Namespace) -> int:
    from auscult.lineage import actor
    from auscult.stages.deploy import reject

    reject(_registry(args), args.version, actor(args.by), args.reason)
    print(f"{args.version} is rejected: it will not be promoted")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from auscult.errors import InputError
    from auscult.lineage import actor
    from auscult.stages.deploy import rollback

    registry = _registry(args)
    current = registry.production()
    if not current or not current["previous"]:
        raise InputError("there is no previous production version to roll back to")
    pointer = rollback(registry, actor(args.by), args.reason, _cluster_for(registry, current["previous"], args))
    print(f"production is now {pointer['version']} (previous: {pointer['previous']})")
    return 0


def _audit(args: argparse.Namespace) -> int:
    import json

    from auscult.lineage import Lineage, who
    from auscult.store import open_store

    trail = Lineage(open_store(_store_uri(args))).audit_trail()
    if args.json:
        print(json.dumps(trail, indent=1))
        return 0
    if not trail:
        print("no governance acts recorded yet")
    for act in trail:
        subject = ", ".join(f"{k} {v}" for k, v in act.get("subject", {}).items() if v and not isinstance(v, dict))
        print(f"{act['time']}  {act['action']:<14} {subject}  by {who(act['actor'])}: {act['reason']}")
    return 0


def _pseudonym_key(args: argparse.Namespace) -> bytes:
    from auscult.errors import InputError
    from auscult.pseudonym import PSEUDONYM_KEY_ENV

    key_file = args.workdir / "pseudonym.key"
    key = os.environ.get(PSEUDONYM_KEY_ENV) or (key_file.read_text().strip() if key_file.is_file() else "")
    if not key:
        raise InputError(
            f"the pseudonymisation key is needed to find the participant: set {PSEUDONYM_KEY_ENV} (on a cluster, "
            f"the 'key' of the pseudonym-key Secret), or give the --workdir of the local run ({key_file} is missing)"
        )
    return key.encode()


def _erase(args: argparse.Namespace) -> int:
    from auscult.erasure import erase
    from auscult.lineage import actor
    from auscult.store import open_store
    from pipelines.workspace import Workspace

    if args.pipeline_root and not args.pipeline_root.is_dir():
        raise CommandFailed(f"--pipeline-root {args.pipeline_root} is not a folder")
    root = args.pipeline_root or Workspace(args.workdir).pipeline_root
    report = erase(
        open_store(_store_uri(args)),
        args.source,
        args.participant,
        _pseudonym_key(args),
        actor(args.by),
        args.reason,
        root if root.is_dir() else None,
        progress=lambda line: print(f"  {line}"),
    )
    print("\n".join(report.lines()))
    return 0


def _plan(args: argparse.Namespace) -> int:
    from auscult.change_control import load_plan, put_plan
    from auscult.lineage import actor
    from auscult.store import open_store

    store = open_store(_store_uri(args))
    if args.plan_command == "put":
        if args.file is None or not args.reason:
            raise CommandFailed("plan put needs the plan's FILE and a --reason (a plan change is an audit event)")
        plan = put_plan(store, args.file.read_text(), str(args.file), actor(args.by), args.reason)
        print(f"plan {plan.name!r} version {plan.version} (sha256 {plan.sha256[:12]}) is in {store.root}")
        print(f"runs apply it with the pipeline parameter change_plan={plan.name}")
    else:
        print(load_plan(store, args.name).text, end="")
    return 0


def _at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value

    parse.__name__ = f"a whole number from {minimum}"
    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1")
    return value


_fraction.__name__ = "a number from 0 to 1"


def _port(text: str) -> int:
    value = _at_least(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def _label(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not key or not equals:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default once, and only where there is one to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, [], argparse.SUPPRESS) or "default:" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def _command(commands, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    return commands.add_parser(name, help=summary, description=description, formatter_class=_HelpFormatter)


def _add_build_options(command: argparse.ArgumentParser) -> None:
    """Images and placement: what a cluster needs of a compiled pipeline."""
    from auscult.pseudonym import PSEUDONYM_SECRET
    from auscult.training_job import TRAINER_SERVICE_ACCOUNT

    command.add_argument(
        "--image",
        help="the runtime image of every task but training (default: $AUSCULT_IMAGE or "
        f"{contract.image_ref('runtime')})",
    )
    command.add_argument(
        "--training-image",
        help=f"the CUDA image of the train task (default: $AUSCULT_TRAINING_IMAGE or {contract.image_ref('training')})",
    )
    command.add_argument(
        "--serving-image",
        help="the default of the run parameter serving_image, the predictor's image "
        f"(default: $AUSCULT_SERVING_IMAGE or {contract.image_ref('serving')})",
    )
    command.add_argument(
        "--gpu-node-selector",
        action="append",
        default=[],
        type=_label,
        metavar="KEY=VALUE",
        help="node label for GPU tasks (training, serving); repeatable (default: "
        + ", ".join(f"{k}={v}" for k, v in contract.GPU_NODE_SELECTOR.items())
        + ")",
    )
    command.add_argument(
        "--gpu-toleration",
        action="append",
        default=[],
        metavar="TAINT_KEY",
        help=f"taint key GPU tasks tolerate (NoSchedule); repeatable (default: {contract.GPU_RESOURCE})",
    )
    command.add_argument(
        "--store-secret",
        default=contract.STORE_SECRET,
        help="Secret with the object store's endpoint, access-key, secret-key and secure, for every task and "
        "the predictor",
    )
    command.add_argument(
        "--pseudonym-secret",
        default=PSEUDONYM_SECRET,
        help="Secret whose 'key' pseudonymises participant ids (ingest, and the predictor's participant tags)",
    )
    command.add_argument(
        "--feedback-secret",
        default=contract.FEEDBACK_SECRET,
        help="Secret whose 'key' signs the predictor's request ids, which feedback must present",
    )
    command.add_argument(
        "--service-account",
        default=contract.PREDICTOR_SERVICE_ACCOUNT,
        help="service account of the predictor's pod (its own: no Role, no token mounted)",
    )
    command.add_argument(
        "--shard-parallelism",
        type=_at_least(1),
        default=8,
        help="at most this many shard tasks of curate and of prep at once (the run parameters shards and "
        "shard_size say how many shards there are)",
    )
    command.add_argument(
        "--training-operator",
        choices=["trainjob", "pytorchjob"],
        help="launch training as a job on the cluster's operator: a Kubeflow Trainer TrainJob (torch-distributed "
        "runtime) or a training-operator PyTorchJob, of train_workers pods; the train task then asks for no GPU "
        "(default: train inside the train task's pod)",
    )
    command.add_argument(
        "--training-gpus-per-worker",
        type=_at_least(0),
        default=1,
        help="GPUs of each training worker pod, with --training-operator (0: CPU workers, gloo)",
    )
    command.add_argument(
        "--training-service-account",
        default=TRAINER_SERVICE_ACCOUNT,
        help="service account of the training workers' pods, with --training-operator (no Role, no token mounted)",
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="auscult",
        description="Respiratory-sound screening on Kubeflow: train, validate, serve and monitor a model.",
        epilog="Start with `auscult run`: the whole lifecycle on a synthetic cohort, on this machine.",
    )
    top.add_argument("--version", action="version", version=f"auscult {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = _command(
        commands,
        "run",
        "run the whole lifecycle on this machine",
        "Train through KFP's local runner, serve the blessed model with Seldon, send production traffic, monitor "
        "it, and retrain on the telemetry when monitoring says so. Prints a line per stage and a summary, writes "
        "an HTML report, and keeps everything KFP printed in a log file under WORKDIR/logs.",
    )
    run.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="PATH",
        help="a dataset folder (Coswara or covid19-cough layout) or a CSV manifest, local or under "
        "s3://bucket/prefix, or 'uploads' (the store's landing prefix); repeatable. Without it a synthetic cohort "
        "is generated, served and monitored.",
    )
    run.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="object store, pipeline root, logs, report")
    run.add_argument("--participants", type=_at_least(1), default=180, help="synthetic cohort size")
    run.add_argument(
        "--traffic-participants", type=_at_least(1), default=40, help="participants in the shifted traffic cohort"
    )
    run.add_argument("--effect", type=float, default=0.3, help="how different the synthetic classes sound")
    run.add_argument(
        "--epochs", type=_at_least(1), default=10, help="training epochs (the best one on validation is kept)"
    )
    run.add_argument("--seed", type=int, default=0, help="seed of the synthetic cohort, the split and training")
    run.add_argument(
        "--shards",
        type=_at_least(1),
        default=1,
        help="shards of the recording table that curate and prep fan out over (one task each; the answer is the "
        "same for any count, and each local task costs about a second)",
    )
    run.add_argument(
        "--train-workers",
        type=_at_least(1),
        default=1,
        help="data-parallel training processes (DistributedDataParallel over gloo), sharing this machine's cores",
    )
    run.add_argument(
        "--min-auroc",
        type=float,
        default=MIN_AUROC,
        help="what the lower bound of the test AUROC's 95%% CI (over participants) must reach to bless a model",
    )
    run.add_argument(
        "--min-participants-per-class",
        type=_at_least(1),
        default=MIN_PARTICIPANTS_PER_CLASS,
        help="participants of each class that validation and test each need; the run stops after label when "
        "the data cannot provide them",
    )
    run.add_argument(
        "--min-margin-over-metadata",
        type=float,
        default=MIN_MARGIN_OVER_METADATA,
        help="how much the model's AUROC must beat recording properties alone (a model that never listened) by, "
        "at the lower bound of the paired 95%% CI over participants",
    )
    run.add_argument(
        "--max-regression",
        type=float,
        default=MAX_REGRESSION,
        help="how far the model's AUROC may fall below the production model's on the same test participants, at "
        "the lower bound of the paired 95%% CI over participants",
    )
    run.add_argument(
        "--no-channel-guard",
        action="store_true",
        help="train as if the recording channel did not predict the label (no front-end cap, no channel "
        "augmentation); for comparing",
    )
    run.add_argument("--no-retrain", action="store_true", help="stop after monitoring, whatever it decides")
    run.add_argument(
        "--change-plan",
        type=Path,
        metavar="FILE",
        help="a change-control plan (YAML) to put in the store and apply: which models ship on their own and "
        "which await `auscult approve` (default: the shipped plan, auscult/plans/default.yaml)",
    )
    run.add_argument("--verbose", action="store_true", help="show everything KFP prints, not only stage lines")
    run.set_defaults(handler=_run)

    generate = _command(
        commands,
        "generate",
        "write a synthetic cohort (Coswara layout)",
        "Write a deterministic synthetic cohort: cough and breathing recordings whose classes differ "
        "acoustically, with age, sex and device metadata and a share of defective files.",
    )
    generate.add_argument("folder", type=Path, help="where to write it (combined_data.csv and a folder per person)")
    generate.add_argument(
        "--participants",
        type=_at_least(1),
        default=180,
        help="how many people (180 with balanced classes clears the participant minimums of a run)",
    )
    generate.add_argument(
        "--positive-fraction", type=_fraction, default=0.5, help="share of participants who are positive"
    )
    generate.add_argument("--seed", type=int, default=0, help="the same seed writes the same files")
    generate.add_argument("--effect", type=float, default=0.3, help="how different the classes sound (0: not at all)")
    generate.add_argument(
        "--defect-rate", type=float, default=0.06, help="share of silent/clipped/truncated/empty files"
    )
    generate.add_argument("--shifted", action="store_true", help="record with the later, narrow-band device mix")
    generate.add_argument(
        "--confound",
        type=_fraction,
        metavar="C",
        help="plant a shortcut: record through two channels tied to the label (an 8 kHz call line for a positive "
        "with probability (1+C)/2, for a negative (1-C)/2; the rest through a 48 kHz app). 1 makes the channel "
        "the label; with --effect 0 the channel is all there is to learn",
    )
    generate.set_defaults(handler=_generate)

    compile_ = _command(
        commands,
        "compile",
        "write the pipeline YAML to upload in the KFP UI",
        "Compile the training pipeline (auscult-training.yaml) and the monitor pipeline (auscult-monitor.yaml) "
        "for a cluster, with the images and GPU placement given here.",
    )
    compile_.add_argument(
        "--output-dir", type=Path, default=Path("build/pipelines"), help="where to write the two YAML files"
    )
    _add_build_options(compile_)
    compile_.set_defaults(handler=_compile)

    submit = _command(
        commands,
        "submit",
        "upload the pipeline to Kubeflow Pipelines, start a run, schedule monitoring",
        "Upload the compiled pipeline as a new version of 'auscult-training', start a run in experiment "
        "'auscult', and with --schedule run the monitor pipeline on a cron schedule.",
    )
    submit.add_argument("--host", required=True, help="the KFP API, e.g. http://ml-pipeline.kubeflow:8888")
    submit.add_argument("--store", help="object store URI for the run, e.g. s3://auscult/prod (needed to start a run)")
    submit.add_argument(
        "--source",
        action="append",
        default=[],
        help="ingest source: s3://bucket/prefix, uploads, telemetry; repeatable (default: uploads, telemetry)",
    )
    submit.add_argument("--epochs", type=_at_least(1), default=10, help="training epochs")
    submit.add_argument(
        "--change-plan",
        metavar="NAME",
        help="the change-control plan in the store that decides what ships on its own (put it with `auscult plan "
        "put`; default: the shipped plan)",
    )
    submit.add_argument("--schedule", metavar="CRON", help="also schedule the monitor pipeline, e.g. '0 3 * * *'")
    submit.add_argument("--version", help="pipeline version name (default: v<UTC timestamp>)")
    submit.add_argument("--upload-only", action="store_true", help="upload the new version, start nothing")
    submit.add_argument("--dry-run", action="store_true", help="print what would be sent and send nothing")
    _add_build_options(submit)
    submit.set_defaults(handler=_submit)

    serve = _command(
        commands,
        "serve",
        "serve a registered model with the Seldon microservice",
        "Start the Seldon Core microservice on the production model (or --version). POST to "
        '/api/v1.0/predictions {"binData": <base64 audio file>} or {"data": {"ndarray": '
        "<16 kHz waveform>}}; feedback to /api/v1.0/feedback.",
    )
    serve.add_argument("--store", help="object store URI (default: the store in --workdir)")
    serve.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="a local run's workdir")
    serve.add_argument("--version", help="a registered version instead of the production one")
    serve.add_argument("--port", type=_port, default=contract.HTTP_PORT, help="HTTP port on 127.0.0.1")
    serve.set_defaults(handler=_serve)

    predict = _command(
        commands,
        "predict",
        "send an audio file to a running server and print its answer",
        "POST the file (any format and size the server accepts) to the server's /api/v1.0/predictions as base64 "
        "binData, and print the class probabilities, the model version and the request id the server gave it.",
    )
    predict.add_argument("file", type=Path, metavar="FILE", help="an audio file: wav, flac, ogg, mp3, webm, m4a, 3gp")
    predict.add_argument("--url", default=f"http://127.0.0.1:{contract.HTTP_PORT}", help="the server's address")
    predict.add_argument(
        "--tag", action="append", default=[], type=_label, metavar="KEY=VALUE", help="a request tag; repeatable"
    )
    predict.add_argument("--json", action="store_true", help="print the server's whole answer as JSON")
    predict.set_defaults(handler=_predict)

    upload = _command(
        commands,
        "upload",
        "copy a local dataset to the object store, for a run on a cluster",
        "Copy a dataset folder (Coswara or covid19-cough layout) to DESTINATION/<its name>/ in an S3-compatible "
        "store, under the rules ingest reads by (only regular files inside the folder), and print the source URI "
        "to give the pipeline. Files already there with the same bytes are not sent again. The endpoint and "
        "credentials come from AUSCULT_S3_ENDPOINT, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.",
    )
    upload.add_argument("folder", type=Path, metavar="FOLDER", help="a dataset folder")
    upload.add_argument("destination", metavar="s3://BUCKET/PREFIX", help="where the dataset's folder goes")
    upload.set_defaults(handler=_upload)

    evaluate = _command(
        commands,
        "evaluate",
        "score a registered model on recordings it has never seen",
        "External validation: read any source the pipeline accepts (checked, quarantined and labelled as in "
        "training), score it with the serving runtime, and report AUROC with a 95% CI over participants and "
        "sensitivity and specificity at the operating point the model was registered with, per subgroup too.",
    )
    evaluate.add_argument(
        "--source", action="append", required=True, metavar="PATH", help="dataset folder or CSV manifest; repeatable"
    )
    evaluate.add_argument("--version", help="a registered version (default: the production one)")
    evaluate.add_argument("--store", help="object store URI holding the registry (default: the store in --workdir)")
    evaluate.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="a local run's workdir; logs, report")
    evaluate.add_argument("--report", type=Path, help="where to write the HTML report (default: under --workdir)")
    evaluate.add_argument(
        "--bootstrap", type=_at_least(100), default=1000, help="participant resamples for each interval"
    )
    evaluate.add_argument(
        "--min-participants-per-class",
        type=_at_least(1),
        default=MIN_PARTICIPANTS_PER_CLASS,
        help="participants of each class the source must have for figures worth reporting",
    )
    evaluate.set_defaults(handler=_evaluate)

    monitor = _command(
        commands,
        "monitor",
        "check production traffic for drift and decide whether to retrain",
        "Compare the telemetry of the production model with its training reference (PSI, KS), score it on "
        "feedback labels, and record the decision and an HTML report in the store. The chart runs this on a "
        "schedule.",
    )
    monitor.add_argument("--store", required=True, help="object store URI (file:///... or s3://bucket/prefix)")
    monitor.set_defaults(handler=_monitor)
    _add_governance_commands(commands)
    return top


def _add_store_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--store", help="object store URI (default: the store in --workdir)")
    command.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="a local run's workdir")


def _add_actor_options(command: argparse.ArgumentParser, reason: str) -> None:
    command.add_argument("--reason", required=True, help=reason)
    command.add_argument(
        "--by", help="who is acting, as the audit trail should name them (the OS user and host are recorded too)"
    )


def _add_governance_commands(commands) -> None:
    lineage = _command(
        commands,
        "lineage",
        "follow a prediction, model or recording through the lineage record",
        "From a served request or a model version: the model, the run that trained it, its code and image, and the "
        "raw recordings of its training split with their source and original path. From a recording: every run "
        "that took it in, every model trained, tuned or tested on it, and every deployment of those models.",
    )
    start = lineage.add_mutually_exclusive_group(required=True)
    start.add_argument("--request-id", help="a request id the server answered with (its telemetry record)")
    start.add_argument("--version", help="a registered model version")
    start.add_argument("--recording", help="a recording id (the SHA-256 of its bytes)")
    lineage.add_argument("--json", action="store_true", help="print the chain as JSON")
    lineage.add_argument("--all", action="store_true", help="list every recording, not the first 20")
    _add_store_options(lineage)
    lineage.set_defaults(handler=_lineage)

    approve = _command(
        commands,
        "approve",
        "let a version that awaits approval into production",
        "Promote VERSION and record who approved it, when, why, and the validation verdict they were shown. Where "
        "deploy rolled models out on a cluster, the version is rolled out from the serving specification recorded "
        "when it was registered.",
    )
    approve.add_argument("version", metavar="VERSION")
    _add_actor_options(approve, "why it may ship (recorded in the audit trail)")
    approve.add_argument("--no-rollout", action="store_true", help="move the production pointer only")
    _add_store_options(approve)
    approve.set_defaults(handler=_approve)

    reject = _command(
        commands, "reject", "close a version: it will not be promoted", "Record that VERSION is rejected."
    )
    reject.add_argument("version", metavar="VERSION")
    _add_actor_options(reject, "why it may not ship")
    _add_store_options(reject)
    reject.set_defaults(handler=_reject)

    rollback = _command(
        commands,
        "rollback",
        "put the previous production version back",
        "Move production back to the version before the one in force (rolled out on a cluster where deploy did).",
    )
    _add_actor_options(rollback, "why (recorded in the audit trail)")
    rollback.add_argument("--no-rollout", action="store_true", help="move the production pointer only")
    _add_store_options(rollback)
    rollback.set_defaults(handler=_rollback)

    audit = _command(
        commands,
        "audit",
        "list every registration, promotion, approval, rejection, rollback, plan change and erasure",
        "The governance acts of the lineage record, oldest first, with who, when and why.",
    )
    audit.add_argument("--json", action="store_true", help="print the acts as JSON")
    _add_store_options(audit)
    audit.set_defaults(handler=_audit)

    erase = _command(
        commands,
        "erase",
        "erase a participant's data and stop it coming back",
        "Delete the participant's raw recordings, quarantine records, origins, telemetry and feedback; remove "
        "their ids from every other object in the store and from the tables, window files and review queues of "
        "the local pipeline root; leave tombstones so that ingest does not bring them back; flag every model "
        "version trained on their data. Lists the runs whose KFP artifacts held them.",
    )
    erase.add_argument("--source", required=True, help="the source's name, as ingest named it (its folder's name)")
    erase.add_argument("--participant", required=True, help="the participant's id in that source")
    _add_actor_options(erase, "the request being honoured (recorded without naming the participant)")
    erase.add_argument("--pipeline-root", type=Path, help="local pipeline root to clean (default: the workdir's)")
    _add_store_options(erase)
    erase.set_defaults(handler=_erase)

    plan = _command(
        commands,
        "plan",
        "put or show a change-control plan",
        "A change-control plan says which changes to production ship on their own and which wait for `auscult "
        "approve`. `plan put FILE` stores a new version (an audit event); runs apply it through the pipeline "
        "parameter change_plan. `plan show [NAME]` prints the plan in force (default: the shipped one).",
    )
    plan.add_argument("plan_command", choices=("put", "show"))
    plan.add_argument("file", type=Path, nargs="?", help="the plan's YAML (put)")
    plan.add_argument("--name", default="", help="the plan to show (default: default)")
    plan.add_argument("--reason", help="why the plan changes (put)")
    plan.add_argument("--by", help="who changes it, as the audit trail should name them")
    _add_store_options(plan)
    plan.set_defaults(handler=_plan)


def _log_file(command: str) -> Path:
    """Where this command's log goes: under the current folder, or the temporary folder if that is read-only."""
    name = f"{command}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.log"
    for folder in (LOGS, Path(tempfile.gettempdir()) / "auscult-logs"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder / name
        except OSError:
            continue
    return Path(os.devnull)


def main(argv: list[str] | None = None) -> int:
    # Piped into `head`, a command stops quietly when the reader does, as other command-line tools do.
    if argv is None and hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = parser().parse_args(argv)
    from auscult.errors import InputError

    log = _log_file(args.command)
    # Library warnings and retries (the store's, kfp's) go to the log; the terminal gets the command's own lines.
    logging.basicConfig(level=logging.INFO, handlers=[logging.FileHandler(log, delay=True)], force=True)
    logging.captureWarnings(True)
    try:
        return args.handler(args)
    except (InputError, CommandFailed) as error:
        print(f"auscult {args.command}: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"auscult {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as error:  # a path or a host the command was given: the message names it
        logging.exception("auscult %s failed", args.command)
        print(f"auscult {args.command}: {error}", file=sys.stderr)
    except Exception as error:  # noqa: BLE001 - a fault of ours: one line here, the traceback in the log
        logging.exception("auscult %s failed", args.command)
        print(f"auscult {args.command}: {type(error).__name__}: {error} (traceback: {log})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
