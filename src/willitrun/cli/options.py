"""Options and arguments shared by the commands, defined once (typer's Annotated form).

Numbers are read as text and bounded by cli/parse.py (one message for both the typer commands and
the lean path); metavars say what to type: MODEL, GPU, SIZE, N, DIR, FILE.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from ..limits import MAX_CONTEXT


# Shell completion (`willitrun --install-completion zsh`): the catalog is read only when the shell
# asks, never when a command runs.
def _catalog_ids(kind: Literal["model", "gpu"], incomplete: str) -> list[str]:
    try:
        from ..catalog import load_catalog

        ids = load_catalog().files(kind)
    except Exception:  # a broken user spec folder must not break the shell's completion
        return []
    return sorted(i for i in ids if i.startswith(incomplete.lower()))


def complete_model(incomplete: str) -> list[str]:
    """Catalog model ids starting with what was typed."""
    return _catalog_ids("model", incomplete)


def complete_gpu(incomplete: str) -> list[str]:
    """Catalog GPU ids starting with what was typed; `2xrtx` completes to `2xrtx3090` and the rest."""
    m = re.match(r"([0-9]+[x×*])?(.*)", incomplete, re.DOTALL)
    count, name = (m.group(1) or "", m.group(2)) if m else ("", incomplete)
    return [f"{count}{g}" for g in _catalog_ids("gpu", name)]


def complete_engine(incomplete: str) -> list[str]:
    """Engine names (and aliases) starting with what was typed."""
    from .parse import ENGINE_NAMES

    return [e for e in ENGINE_NAMES if e.startswith(incomplete.lower())]


Model = Annotated[
    str,
    typer.Argument(
        metavar="MODEL",
        show_default=False,
        help="Model id or alias, e.g. llava-7b (see `willitrun list models`); or a config.json, a model directory, "
        "a .gguf file, a spec .yaml or hf:ORG/NAME; ORG/NAME[:QUANT] from the local Hugging Face cache, an ollama "
        "name (qwen3:8b); hf:ORG/NAME/FILE.gguf or an https URL to a .gguf (its header, by range requests).",
    ),
]
CatalogModel = Annotated[
    str,
    typer.Argument(
        metavar="MODEL", show_default=False, help="Model id or alias, e.g. llama-3.1-8b (see `willitrun list models`)."
    ),
]
Gpus = Annotated[
    Optional[list[str]],
    typer.Option(
        "--gpu",
        "-g",
        metavar="GPU",
        show_default=False,
        help="GPU id, alias or NVML name, e.g. rtx3090; several cards: repeat it or write 2xrtx3090 "
        "[default: the detected GPU].",
    ),
]
Gpu = Annotated[
    Optional[str],
    typer.Option(
        "--gpu",
        "-g",
        metavar="GPU",
        show_default=False,
        help="GPU id, alias or NVML name, e.g. rtx3090 [default: the detected GPU].",
    ),
]
Vram = Annotated[
    Optional[str],
    typer.Option(
        "--vram",
        metavar="SIZE",
        show_default=False,
        help="Memory to fit into instead of a GPU: 24GiB, 24GB, 81920MiB (bare number = GiB).",
    ),
]
Context = Annotated[
    Optional[str],
    typer.Option(
        "--context",
        "-c",
        metavar="N",
        show_default=False,
        help=f"Positions in the self-attention cache, image tokens included, 1 to 2^{MAX_CONTEXT.bit_length() - 1} "
        "[default: min(4096, model window); llama.cpp on a card: what its --fit picks; vLLM: the window; ollama: "
        "its own].",
    ),
]
Batch = Annotated[str, typer.Option("--batch", "-b", metavar="N", help="Sequences processed together, 1 to 2^20.")]
Beams = Annotated[
    str,
    typer.Option("--beams", metavar="N", help="Beam search width, 1 to 1024; multiplies KV caches and activations."),
]
Dtype = Annotated[
    Optional[str],
    typer.Option(
        "--dtype",
        metavar="TYPE",
        show_default=False,
        help="Weight type: fp32 fp16 bf16 fp8 int8 int4 q8_0 q6_k q5_k_m q4_k_m q4_0 q3_k_m q2_k "
        "[default: the checkpoint's].",
    ),
]
KvDtype = Annotated[
    Optional[str],
    typer.Option(
        "--kv-dtype",
        metavar="TYPE",
        show_default=False,
        help="KV cache type: f32 f16 bf16 fp8 q8_0 q4_0 [default: the compute type].",
    ),
]
Images = Annotated[
    Optional[str],
    typer.Option(
        "--images",
        metavar="N",
        show_default=False,
        help="Images per sequence, 0 to 1024 (LLaVA, Llama 3.2 Vision; Florence-2 at most 1; per input for "
        "CLIP/SigLIP) [default: 1].",
    ),
]
ImageSize = Annotated[
    Optional[str],
    typer.Option(
        "--image-size",
        metavar="HxW",
        show_default=False,
        help="HEIGHTxWIDTH of the image: LLaVA-NeXT's anyres tiling, Qwen2-VL/2.5-VL's native resolution (and its "
        "video frames), Mistral 3 [default: the largest token count].",
    ),
]
EncoderTokens = Annotated[
    Optional[str],
    typer.Option(
        "--encoder-tokens",
        metavar="N",
        show_default=False,
        help="Encoder input tokens, 1 to 2^20: T5 and BART-style models (default 512), Pix2Struct's max_patches "
        "(default 2048), Florence-2's prompt (default: the longest beside the image).",
    ),
]
SpecsDir = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--specs-dir",
        metavar="DIR",
        show_default=False,
        help="Extra directory with model_specs/ and/or hardware_specs/ (repeatable); adds to or overrides the "
        "bundled catalog. Also read from WILLITRUN_SPECS_PATH.",
    ),
]
Engine = Annotated[
    Optional[str],
    typer.Option(
        "--engine",
        "-e",
        metavar="ENGINE",
        show_default=False,
        help="transformers, llama.cpp, ollama, whisper.cpp, vllm or ctranslate2 (alias faster-whisper) [default: as the estimate command: llama.cpp "
        "for a GGUF type, else transformers].",
    ),
]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print nothing; only the exit code tells (0 fits, 1 does not).")
]


def json_option(doc: str) -> object:
    """--json, saying which document describes the output."""
    return typer.Option("--json", help=f"Print JSON ({doc}) instead of a table.")


Json = Annotated[bool, json_option("docs/json-output.md")]
AnswersJson = Annotated[bool, json_option("docs/answers-json.md")]


def command_app() -> typer.Typer:
    """The one-command typer app each cli/commands module defines: plain help (no rich panels, which
    also read `[default: ...]` in a help text as markup and drop it)."""
    return typer.Typer(rich_markup_mode=None, add_completion=False, pretty_exceptions_enable=False)


Margin = Annotated[
    Optional[str],
    typer.Option(
        "--margin",
        metavar="SIZE",
        show_default=False,
        help="Your own reserve, kept free of the card (as --vram: 2GiB, 512MiB; bare number = GiB) [default: 0].",
    ),
]
