"""`willitrun estimate` (the default command): the options; cli/estimation.py does the work."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any, Optional, get_type_hints

import typer

from ...engines.registry import OPTIONS, REGISTRY, REQUEST_ALIASES, Option
from ..estimation import EstimateArgs, run_estimate
from ..options import (
    Batch,
    Context,
    Dtype,
    EncoderTokens,
    Gpus,
    Images,
    ImageSize,
    Json,
    KvDtype,
    Model,
    Quiet,
    SpecsDir,
    Vram,
    command_app,
)

app = command_app()


def _opt(*names: str, metavar: str | None = None, help: str) -> object:
    return typer.Option(*names, metavar=metavar, show_default=False, help=help)


@app.command("estimate")
def estimate_cmd(
    model: Model,
    gpu: Gpus = None,
    vram: Vram = None,
    margin: Annotated[
        Optional[str],
        _opt(
            "--margin",
            metavar="SIZE",
            help="Your own reserve, kept free of the card (as --vram: 2GiB, 512MiB; bare number = GiB) [default: 0].",
        ),
    ] = None,
    ram: Annotated[
        Optional[str],
        _opt(
            "--ram",
            metavar="SIZE",
            help="This machine's memory for the host side of an offload plan (as --vram) [default: detected: available now, else total; a container's cgroup limit].",
        ),
    ] = None,
    context: Context = None,
    batch: Batch = "1",
    dtype: Dtype = None,
    kv_dtype: KvDtype = None,
    images: Images = None,
    image_size: ImageSize = None,
    encoder_tokens: EncoderTokens = None,
    video_frames: Annotated[
        Optional[str],
        _opt(
            "--video-frames",
            metavar="N",
            help="Frames of one video per sequence (Qwen2-VL/2.5-VL); --image-size sets the frame size, 1 to 65,536 [default: no video].",
        ),
    ] = None,
    audio_seconds: Annotated[
        Optional[str],
        _opt(
            "--audio-seconds",
            metavar="N",
            help="Seconds of audio per sequence whose tokens sit in the context (Qwen2-Audio, Voxtral, Gemma 3n, Gemma 4) [default: 30].",
        ),
    ] = None,
    beams: Annotated[
        Optional[str],
        _opt(
            "--beams",
            metavar="N",
            help="Beam search width, 1 to 1024; multiplies KV caches and activations [default: 1; whisper.cpp: 1, ctranslate2: faster-whisper's 5].",
        ),
    ] = None,
    split: Annotated[
        Optional[str],
        _opt(
            "--split",
            metavar="HOW",
            help="Several cards: tensor (tensor parallel; the default for identical cards) or layer (whole layers per card; the default for mixed cards).",
        ),
    ] = None,
    offload: Annotated[
        bool,
        typer.Option(
            "--offload",
            help="How many layers stay on the GPU when it does not fit (llama.cpp -ngl) and the system memory for the rest.",
        ),
    ] = False,
    speed: Annotated[
        bool, typer.Option("--speed", help="Upper bound on decode tokens/s: memory bandwidth / bytes read per token.")
    ] = False,
    system_bandwidth: Annotated[
        Optional[str],
        _opt(
            "--system-bandwidth",
            metavar="GB/S",
            help="System-memory bandwidth in GB/s for --offload --speed [default: 89.6, dual-channel DDR5-5600].",
        ),
    ] = None,
    max_batch: Annotated[
        bool, typer.Option("--max-batch", help="Also the largest batch that fits at this context.")
    ] = False,
    no_chart: Annotated[
        bool,
        typer.Option(
            "--no-chart", help="No bar of the memory parts against the card (it is shown only in a terminal)."
        ),
    ] = False,
    engine: Annotated[
        Optional[str],
        _opt(
            "--engine",
            "-e",
            metavar="ENGINE",
            help="transformers, llama.cpp, ollama, whisper.cpp, vllm or ctranslate2 (alias faster-whisper; any case) [default: llama.cpp for GGUF --dtype, else transformers].",
        ),
    ] = None,
    gpus_per_node: Annotated[
        Optional[str],
        _opt(
            "--gpus-per-node",
            metavar="N",
            help="Several nodes: --gpu 16xh100-sxm --gpus-per-node 8 plans vLLM with Ray (or --engine llama.cpp: RPC); docs/cluster.md.",
        ),
    ] = None,
    cluster: Annotated[
        Optional[Path],
        _opt(
            "--cluster",
            metavar="FILE",
            help="Several nodes from a YAML file (nodes: [{host, gpu, gpus}], head first); docs/cluster.md.",
        ),
    ] = None,
    json_out: Json = False,
    quiet: Quiet = False,
    specs_dir: SpecsDir = None,
    **engine_options: Any,
) -> None:
    """Estimate the memory MODEL needs and whether it fits the GPU (exit 0 fits, 5 tight, 1 does not)."""
    given = {**locals()}
    options = given.pop("engine_options")
    raise typer.Exit(run_estimate(EstimateArgs(**given, options=options)))


def _with_aliases(annotation: Any, aliases: tuple[str, ...]) -> Any:
    """A request option (--context, --beams) that also answers to the engines' own spellings."""
    info = annotation.__metadata__[0]
    # inside Annotated, typer keeps the first name in `default` and the rest in `param_decls`
    names = (info.default, *info.param_decls) if isinstance(info.default, str) else tuple(info.param_decls)
    return Annotated[
        annotation.__origin__, typer.Option(*names, *aliases, metavar=info.metavar, show_default=False, help=info.help)
    ]


def _engine_parameter(o: Option) -> inspect.Parameter:
    """The typer parameter of one declared engine option (a version option lists its table's keys)."""
    kind = inspect.Parameter.KEYWORD_ONLY
    versions = [list(e.versions()) for e in REGISTRY.values() if e.version_key == o.key and e.strict_versions]
    choices = ", ".join(versions[0]) if versions else ""
    if o.kind == "switch":
        return inspect.Parameter(
            o.key, kind, default=False, annotation=Annotated[bool, typer.Option(*o.flags, help=o.help_text())]
        )
    if o.kind == "bool":
        return inspect.Parameter(
            o.key,
            kind,
            default=None,
            annotation=Annotated[
                Optional[bool], typer.Option(f"{o.flags[0]}/{o.off[0]}", show_default=False, help=o.help_text())
            ],
        )
    return inspect.Parameter(
        o.key,
        kind,
        default=None,
        annotation=Annotated[
            Optional[str], typer.Option(*o.flags, metavar=o.metavar, show_default=False, help=o.help_text(choices))
        ],
    )


def _signature() -> inspect.Signature:
    """estimate_cmd's own parameters, the request options with the engines' spellings, then one
    parameter per declared engine option (engines/registry.py), in that order before --gpus-per-node."""
    hints = get_type_hints(estimate_cmd, include_extras=True)
    own = [
        p.replace(annotation=hints[p.name])
        for p in inspect.signature(estimate_cmd).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    own = [
        p.replace(annotation=_with_aliases(p.annotation, REQUEST_ALIASES[p.name])) if p.name in REQUEST_ALIASES else p
        for p in own
    ]
    at = next(i for i, p in enumerate(own) if p.name == "gpus_per_node")
    params = [*own[:at], *(_engine_parameter(o) for o in OPTIONS), *own[at:]]
    return inspect.Signature(
        [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.name != "model" else p for p in params]
    )


estimate_cmd.__signature__ = _signature()  # type: ignore[attr-defined]
estimate_cmd.__annotations__ = {p.name: p.annotation for p in estimate_cmd.__signature__.parameters.values()}  # type: ignore[attr-defined]
