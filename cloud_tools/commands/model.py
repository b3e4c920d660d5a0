"""``python -m cloud_tools model ...``: upload, push, status and stamp models.

    model upload FILE.onnx [--container models] [--expiry-hours 24]
    model push --device D [--module classifier] (--model FILE | --url URL --sha256 HEX)
               [--name N] [--version V] [--size BYTES] [--sign-key KEY] [--timeout S]
    model status --device D [--module classifier] [--json]
    model stamp FILE.onnx --out NEW.onnx [--version V] [--name N] [--self-test IMAGE]
    model rollout --name DEPLOYMENT --target-condition "tags.site='x'" --priority P
                  (--model FILE | --url URL --sha256 HEX) [--canary-percent K]
                  [--gate "low_confidence_share<=0.10,mean_confidence>=0.85"]

``push`` writes the module twin's desired ``model`` section (docs/module-twin.md), then follows
the module's reported ``modelUpdate`` until it says ``active`` for this push (exit 0), ``failed``
or ``rolled_back`` (exit 1, printing the module's error), or the timeout passes (exit 3).
``rollout`` does the same for every device a target condition selects, through a layered
deployment, canary first when asked (``cloud_tools.rollout``).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from classifier.model_update.desired import MODEL_KEYS, SCHEMA_VERSION
from classifier.model_update.signing import signed_message
from cloud_tools.commands.keys import load_private_key
from cloud_tools.errors import FAILED, TIMED_OUT, USAGE, CliError
from cloud_tools.hub_service import HubService, add_hub_arguments
from cloud_tools.model_stamp import stamp_model
from cloud_tools.model_storage import describe_file, upload_model
from cloud_tools.push_progress import PushProgress
from cloud_tools.rollout import Rollout, RolloutPlan, check_rollout
from cloud_tools.rollout_gate import Gate
from cloud_tools.transport import add_transport_arguments, module_service


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("model", help="upload, push and inspect models")
    verbs = parser.add_subparsers(dest="verb", required=True)

    upload = verbs.add_parser("upload", help="put a model in Blob Storage; print a SAS URL")
    upload.add_argument("file", type=Path)
    _storage_arguments(upload)
    upload.add_argument("--json", action="store_true")
    upload.set_defaults(run=_upload)

    push = verbs.add_parser("push", help="send a model to a device's module and follow it")
    _device_arguments(push)
    _model_source_arguments(push)
    push.add_argument("--name", help="model name to report (default: the file's spec)")
    push.add_argument("--version", help="model version to report (default: the file's spec)")
    push.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for active")
    push.add_argument("--no-wait", action="store_true", help="write the twin and return")
    push.add_argument("--poll-s", type=float, default=1.0, help=argparse.SUPPRESS)
    _storage_arguments(push)
    push.set_defaults(run=_push)

    status = verbs.add_parser("status", help="what the module reports about its models")
    _device_arguments(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=_status)

    stamp = verbs.add_parser("stamp", help="a copy of a model with a new version or self-test")
    stamp.add_argument("file", type=Path)
    stamp.add_argument("--out", type=Path, required=True)
    stamp.add_argument("--name")
    stamp.add_argument("--version")
    stamp.add_argument("--self-test", type=Path, help="golden image the model must recognise")
    stamp.add_argument("--expect", help="its label (default: what the model answers now)")
    stamp.add_argument("--min-confidence", type=float, default=0.5)
    stamp.set_defaults(run=_stamp)

    rollout = verbs.add_parser(
        "rollout", help="a model to every device a target condition selects, canary first"
    )
    rollout.add_argument("--name", required=True, help="the layered deployment's id")
    rollout.add_argument(
        "--target-condition", required=True, help="e.g. \"tags.site='lab'\" (* for every device)"
    )
    rollout.add_argument(
        "--priority", type=int, required=True, help="above the devices' base deployment's"
    )
    _model_source_arguments(rollout)
    rollout.add_argument("--model-name", help="model name to report (default: the file's spec)")
    rollout.add_argument("--model-version", help="model version (default: the file's spec)")
    rollout.add_argument(
        "--canary-percent",
        type=float,
        help="first roll out to this share of the devices (by device id, at least one) and "
        "halt if any of them fails",
    )
    rollout.add_argument(
        "--gate",
        help="conditions the canaries' signals for the new model must meet after the canary "
        'window, e.g. "low_confidence_share<=0.10,mean_confidence>=0.85" (metrics: '
        "mean_confidence, low_confidence_share, error_rate, p50_ms, p99_ms); a failed gate "
        "halts the rollout and rolls the canaries back. Needs --canary-percent",
    )
    rollout.add_argument(
        "--canary-window-s", type=float, default=120.0, help="seconds the canaries run first"
    )
    rollout.add_argument(
        "--gate-min-frames", type=int, default=50, help="frames each canary must have scored"
    )
    rollout.add_argument("--module", default="classifier")
    rollout.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds to wait for each stage"
    )
    rollout.add_argument("--poll-s", type=float, default=2.0, help=argparse.SUPPRESS)
    add_hub_arguments(rollout)
    _storage_arguments(rollout)
    rollout.set_defaults(run=_rollout)


def _device_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", required=True, help="with --mqtt: the replica's client id")
    parser.add_argument("--module", default="classifier")
    add_transport_arguments(parser)


def _model_source_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="a model file: uploaded first")
    source.add_argument("--url", help="a URL the device can download (https, SAS)")
    parser.add_argument("--sha256", help="with --url: the file's sha256")
    parser.add_argument("--size", type=int, help="with --url: the file's size in bytes")
    parser.add_argument("--sign-key", type=Path, help="ed25519 private key (keys new) to sign with")


def _storage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--container", default="models")
    parser.add_argument("--expiry-hours", type=float, default=24.0)


def _upload(args: argparse.Namespace) -> int:
    uploaded = upload_model(args.file, args.container, args.expiry_hours)
    doc = {
        "url": uploaded.url,
        "sha256": uploaded.sha256,
        "size": uploaded.size,
        "name": uploaded.name,
        "version": uploaded.version,
        "expires": uploaded.expires_at.isoformat(timespec="seconds"),
        "blob": f"{args.container}/{uploaded.blob}",
    }
    if args.json:
        print(json.dumps(doc))
        return 0
    for key in ("name", "version", "sha256", "size", "blob", "expires", "url"):
        print(f"{key:<8} {doc[key]}")
    return 0


def _push(args: argparse.Namespace) -> int:
    hub = module_service(args)
    model = _model_section(args, args.name, args.version)
    patch = {"schemaVersion": SCHEMA_VERSION, "model": model}
    version = hub.patch_desired(args.device, args.module, patch)
    label = " ".join(str(model[k]) for k in ("name", "version") if model.get(k))
    print(f"desired model {label} ({model['sha256'][:12]}) written, twin $version {version}")
    if args.no_wait:
        return 0
    progress = PushProgress(sys.stdout, model["sha256"], version)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        reported = hub.module_twin(args.device, args.module)["reported"]
        outcome = progress.update(reported)
        if outcome is not None:
            return outcome
        time.sleep(args.poll_s)
    raise CliError(f"no final state within {args.timeout:g} s: {progress.last_line}", TIMED_OUT)


def _model_section(
    args: argparse.Namespace, name_override: str | None, version_override: str | None
) -> dict[str, Any]:
    if args.model is not None:
        name, version, sha256, size = describe_file(args.model)
        uploaded = upload_model(args.model, args.container, args.expiry_hours)
        print(f"uploaded {args.model.name} to {args.container}/{uploaded.blob}")
        url = uploaded.url
    else:
        if not args.sha256:
            raise CliError("--url needs --sha256", USAGE)
        name, version, sha256, size, url = None, None, args.sha256.lower(), args.size, args.url
    section: dict[str, Any] = {
        "name": name_override or name,
        "version": version_override or version,
        "url": url,
        "sha256": sha256,
        "size": size,
    }
    if args.sign_key is not None:
        key: Ed25519PrivateKey = load_private_key(args.sign_key)
        signature = key.sign(signed_message(sha256))
        section["signature"] = base64.b64encode(signature).decode()
    # Every key, null included: the twin merges patches, and a key left out would keep the
    # previous push's value (a stale size or signature would fail this model).
    return {key: section.get(key) for key in MODEL_KEYS}


def _rollout(args: argparse.Namespace) -> int:
    # Before any upload: a bad id or connection string fails first.
    check_rollout(args.name, args.priority, args.canary_percent)
    gate = None
    if args.gate:
        if args.canary_percent is None:
            raise CliError("--gate judges canaries: give --canary-percent too", USAGE)
        gate = Gate.parse(args.gate, args.canary_window_s, args.gate_min_frames)
    hub = HubService.from_args(args)
    plan = RolloutPlan(
        name=args.name,
        module=args.module,
        target_condition=args.target_condition,
        priority=args.priority,
        model=_model_section(args, args.model_name, args.model_version),
        canary_percent=args.canary_percent,
        timeout_s=args.timeout,
        poll_s=args.poll_s,
        gate=gate,
    )
    return Rollout(hub, plan, sys.stdout).run()


def _status(args: argparse.Namespace) -> int:
    twin = module_service(args).module_twin(args.device, args.module)
    reported = twin["reported"]
    wanted = twin["desired"].get("model") or {}
    doc = {
        "desired": {"$version": twin["desired"].get("$version"), "model": _public(wanted)},
        "model": reported.get("model"),
        "previousModel": reported.get("previousModel"),
        "modelUpdate": reported.get("modelUpdate"),
        "inference": reported.get("inference"),
        "state": reported.get("state"),
    }
    active, update = doc["model"] or {}, doc["modelUpdate"] or {}
    # Non-zero when the last update did not take, so scripts can check a device in one call.
    code = FAILED if update.get("state") in ("failed", "rolled_back") else 0
    if args.json:
        print(json.dumps(doc, indent=2))
        return code
    print(f"module     {args.device}/{args.module}: {doc['state'] or 'unknown'}")
    print(
        f"active     {active.get('name')} {active.get('version')} "
        f"({str(active.get('sha256'))[:12]}) on {active.get('provider')} since "
        f"{active.get('activated_at')} [{active.get('source')}]"
    )
    previous = doc["previousModel"]
    if previous:
        print(
            f"previous   {previous.get('name')} {previous.get('version')} ({str(previous.get('sha256'))[:12]})"
        )
    print(
        f"update     {update.get('state', 'none')} for desired $version {update.get('desiredVersion')}"
    )
    if update.get("error"):
        print(f"error      {update['error'].get('code')}: {update['error'].get('reason')}")
    print(
        f"desired    $version {doc['desired']['$version']}: {json.dumps(doc['desired']['model'])}"
    )
    return code


def _public(model: dict[str, Any]) -> dict[str, Any]:
    """The desired model without its URL's SAS query (a secret while it is valid)."""
    shown = dict(model)
    if isinstance(shown.get("url"), str):
        shown["url"] = shown["url"].split("?", 1)[0]
    return shown


def _stamp(args: argparse.Namespace) -> int:
    spec, sha256 = stamp_model(
        args.file,
        args.out,
        name=args.name,
        version=args.version,
        self_test_image=args.self_test,
        expect=args.expect,
        min_confidence=args.min_confidence,
    )
    golden = f", self-test {spec.self_test.label}" if spec.self_test else ""
    print(f"wrote {args.out}: {spec.name} {spec.version}{golden}, sha256 {sha256}")
    return 0
