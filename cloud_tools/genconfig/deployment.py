"""Generate, check, write: what ``python -m cloud_tools genconfig`` does, as functions.

``prepare`` refuses (``GenconfigError``, every problem at once) rather than return a manifest
that a device would reject; a layered template is checked on top of its base, since a layer
alone is not something a device can run. A solution whose deployment template is itself a
layer (iotedgedev makes those) has no base: its layer is checked alone, with a note saying so. ``device_manifest`` is the full manifest a device
running a base and some layers gets, which is what the simulator deploys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from cloud_tools.genconfig.checks import content_problems, manifest_problems
from cloud_tools.genconfig.environment import setting
from cloud_tools.genconfig.errors import GenconfigError
from cloud_tools.genconfig.generate import Generated, generate_deployment
from cloud_tools.genconfig.layers import compose, layer_problems

__all__ = ["base_template_for", "device_manifest", "prepare", "write_manifest"]

_NOT_COMPOSED = (
    "{name} is a layered deployment and the solution has no base deployment: the layer was "
    "checked on its own, its composition over a base was not checked (name one with --base)"
)


def base_template_for(layer_template: Path, env: Mapping[str, str]) -> Path:
    """The base a layer is checked on by default: the solution's deployment template."""
    return layer_template.parent / Path(setting(env, "DEPLOYMENT_CONFIG_TEMPLATE_FILE")).name


def prepare(
    template: Path,
    platform: str,
    env: Mapping[str, str],
    *,
    base: Path | None = None,
    schemas_dir: Path | None = None,
) -> Generated:
    generated = generate_deployment(template, platform, env)
    if not generated.layered:
        problems = manifest_problems(generated.document, [generated], schemas_dir=schemas_dir)
    else:
        problems = layer_problems(generated.document, str(template))
        if base is None and _solution_is_layered(template, platform, env):
            # iotedgedev makes such a solution (a layer as its deployment template): there is
            # no base to compose over, so the layer is checked alone and the operator told.
            problems += [
                f"{template}: {p}" for p in content_problems(generated.document, [generated])
            ]
            generated = replace(generated, notes=(_NOT_COMPOSED.format(name=template.name),))
        elif not problems:
            problems = _composed_problems(
                generated, base or base_template_for(template, env), schemas_dir
            )
    if problems:
        raise GenconfigError([f"{template} (platform {platform}):", *problems])
    return generated


def _solution_is_layered(template: Path, platform: str, env: Mapping[str, str]) -> bool:
    """Whether the solution's deployment template is ``template`` itself or another layer."""
    default_base = base_template_for(template, env)
    if default_base.resolve() == template.resolve():
        return True
    return default_base.is_file() and generate_deployment(default_base, platform, env).layered


def _composed_problems(layer: Generated, base: Path, schemas_dir: Path | None) -> list[str]:
    base_generated = generate_deployment(base, layer.platform, layer.env)
    if base_generated.layered:
        raise GenconfigError([f"{base_generated.template}: a base cannot be a layer"])
    composed = compose(base_generated.document, [layer.document])
    return [
        f"with base {base_generated.template.name}: {p}"
        for p in manifest_problems(composed, [base_generated, layer], schemas_dir=schemas_dir)
    ]


def write_manifest(generated: Generated, cwd: Path) -> Path:
    """Writes where iotedgedev writes: ``$CONFIG_OUTPUT_DIR`` (``config``) under ``cwd``."""
    directory = cwd / setting(generated.env, "CONFIG_OUTPUT_DIR")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / generated.file_name
    path.write_text(generated.text, encoding="utf-8")
    return path


def device_manifest(
    base: Path,
    layers: Sequence[Path],
    platform: str,
    env: Mapping[str, str],
    *,
    schemas_dir: Path | None = None,
) -> dict[str, Any]:
    """The checked full manifest of a device that ``base`` and every layer target."""
    generated = [prepare(base, platform, env, schemas_dir=schemas_dir)]
    generated += [
        prepare(layer, platform, env, base=base, schemas_dir=schemas_dir) for layer in layers
    ]
    composed = compose(generated[0].document, [g.document for g in generated[1:]])
    problems = manifest_problems(composed, generated, schemas_dir=schemas_dir)
    if problems:
        raise GenconfigError([f"{base} with {', '.join(map(str, layers))}:", *problems])
    return composed
