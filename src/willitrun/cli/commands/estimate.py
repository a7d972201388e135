"""`willitrun estimate` (the default command): the options; cli/estimation.py does the work."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ...engines.llamacpp import LLAMACPP_VERSIONS
from ...engines.vllm import VLLM_DEFAULT_VERSION, VLLM_VERSIONS
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
    margin: Annotated[Optional[str], _opt("--margin", metavar="SIZE", help="Your own reserve, kept free of the card (as --vram: 2GiB, 512MiB; bare number = GiB) [default: 0].")] = None,
    context: Context = None,
    batch: Batch = "1",
    dtype: Dtype = None,
    kv_dtype: KvDtype = None,
    images: Images = None,
    image_size: ImageSize = None,
    encoder_tokens: EncoderTokens = None,
    video_frames: Annotated[Optional[str], _opt("--video-frames", metavar="N", help="Frames of one video per sequence (Qwen2-VL/2.5-VL); --image-size sets the frame size, 1 to 65,536 [default: no video].")] = None,
    beams: Annotated[Optional[str], _opt("--beams", metavar="N", help="Beam search width, 1 to 1024; multiplies KV caches and activations [default: 1; whisper.cpp: 1, ctranslate2: faster-whisper's 5].")] = None,
    split: Annotated[Optional[str], _opt("--split", metavar="HOW", help="Several cards: tensor (tensor parallel; the default for identical cards) or layer (whole layers per card; the default for mixed cards).")] = None,
    offload: Annotated[bool, typer.Option("--offload", help="How many layers stay on the GPU when it does not fit (llama.cpp -ngl) and the system memory for the rest.")] = False,
    speed: Annotated[bool, typer.Option("--speed", help="Upper bound on decode tokens/s: memory bandwidth / bytes read per token.")] = False,
    system_bandwidth: Annotated[Optional[str], _opt("--system-bandwidth", metavar="GB/S", help="System-memory bandwidth in GB/s for --offload --speed [default: 89.6, dual-channel DDR5-5600].")] = None,
    max_batch: Annotated[bool, typer.Option("--max-batch", help="Also the largest batch that fits at this context.")] = False,
    no_chart: Annotated[bool, typer.Option("--no-chart", help="No bar of the memory parts against the card (it is shown only in a terminal).")] = False,
    engine: Annotated[Optional[str], _opt("--engine", "-e", metavar="ENGINE", help="transformers, llama.cpp, ollama, whisper.cpp, vllm or ctranslate2 (alias faster-whisper; any case) [default: llama.cpp for GGUF --dtype, else transformers].")] = None,
    ubatch: Annotated[Optional[str], _opt("--ubatch", metavar="N", help="llama.cpp -ub / ollama num_batch [default: 512].")] = None,
    flash_attn: Annotated[Optional[bool], typer.Option("--flash-attn/--no-flash-attn", show_default=False, help="llama.cpp, ollama, whisper.cpp [default: the engine's (whisper.cpp: the version's)].")] = None,
    parallel: Annotated[Optional[str], _opt("--parallel", metavar="N", help="llama.cpp -np / OLLAMA_NUM_PARALLEL, 1 to 4096 [default: llama-server's auto, 4 slots sharing one cache (builds since PR #16736); ollama 1].")] = None,
    gpu_layers: Annotated[Optional[str], _opt("--gpu-layers", metavar="N", help="llama.cpp -ngl / ollama num_gpu [default: all].")] = None,
    gpu_memory_utilization: Annotated[Optional[str], _opt("--gpu-memory-utilization", metavar="SHARE", help="vLLM's share of the card, 0.01 to 1 [default: 0.9].")] = None,
    op_offload: Annotated[Optional[bool], typer.Option("--op-offload/--no-op-offload", show_default=False, help="llama.cpp: run host-weight ops of large batches on the GPU (PR #6083, flag from PR #13386) [default: on; builds before March 2024 have none].")] = None,
    llamacpp_version: Annotated[Optional[str], _opt("--llamacpp-version", metavar="KEY", help=f"llama.cpp build range (KV padding, flash-attention default, op offload): {', '.join(LLAMACPP_VERSIONS)} [default: current].")] = None,
    ollama_version: Annotated[Optional[str], _opt("--ollama-version", metavar="KEY", help="ollama release line (default context, flash attention): 0.6 (v0.6.7-v0.15.4), 0.15 (v0.15.5-v0.29), 0.30 (v0.30 on: llama-server runner) [default: 0.30].")] = None,
    n_cpu_moe: Annotated[Optional[str], _opt("--n-cpu-moe", metavar="N", help="llama.cpp: keep the expert tensors of the first N layers in host memory (mixture-of-experts models) [default: 0].")] = None,
    cpu_moe: Annotated[bool, typer.Option("--cpu-moe", help="llama.cpp: keep the expert tensors of every layer in host memory (-cmoe).")] = False,
    whisper_version: Annotated[Optional[str], _opt("--whisper-version", metavar="KEY", help="whisper.cpp release line: 1.5 (1.5.0-1.5.4), 1.5.5, 1.6, 1.7, 1.8 or latest; tags like v1.7.4 work; sets cache sizes and the flash-attention default [default: latest].")] = None,
    best_of: Annotated[Optional[str], _opt("--best-of", metavar="N", help="whisper.cpp -bo / faster-whisper best_of: decoders at a fallback temperature [default: 5].")] = None,
    no_fallback: Annotated[bool, typer.Option("--no-fallback", help="whisper.cpp -nf / faster-whisper temperature=0: no temperature fallback (no best_of decoders).")] = False,
    compute_type: Annotated[Optional[str], _opt("--compute-type", metavar="TYPE", help="ctranslate2 compute_type: default, float16, bfloat16, float32, int8, int8_float16, int8_bfloat16, int8_float32 [default: default].")] = None,
    cuda: Annotated[Optional[str], _opt("--cuda", metavar="11|12", help="ctranslate2: the CUDA major version of the build (CTranslate2 4.x: 12, 3.x: 11) [default: 12].")] = None,
    swa_full: Annotated[bool, typer.Option("--swa-full", help="llama.cpp: sliding-window layers keep every cell, not just their window.")] = False,
    override_tensor: Annotated[Optional[list[str]], _opt("--override-tensor", "-ot", metavar="PATTERN=CPU", help="llama.cpp -ot: the layers' tensors whose GGUF name the regex finds stay in host memory, e.g. exps=CPU; repeatable or comma-separated, at most 64.")] = None,
    fit_target: Annotated[Optional[str], _opt("--fit-target", metavar="MIB", help="llama.cpp --fit-target: MiB its --fit keeps free per device, 0 to 1,048,576 [default: 1024 on builds with --fit (PR #16653), else 0].")] = None,
    max_num_seqs: Annotated[Optional[str], _opt("--max-num-seqs", metavar="N", help="vLLM --max-num-seqs [default: the version's].")] = None,
    max_num_batched_tokens: Annotated[Optional[str], _opt("--max-num-batched-tokens", metavar="N", help="vLLM --max-num-batched-tokens [default: the version's].")] = None,
    vllm_version: Annotated[Optional[str], _opt("--vllm-version", metavar="KEY", help=f"vLLM version: {', '.join(VLLM_VERSIONS)} [default: {VLLM_DEFAULT_VERSION}].")] = None,
    tensor_parallel_size: Annotated[Optional[str], _opt("--tensor-parallel-size", "-tp", metavar="N", help="vLLM tensor parallel size (per-rank memory) [default: 1; several nodes: searched].")] = None,
    pipeline_parallel_size: Annotated[Optional[str], _opt("--pipeline-parallel-size", "-pp", metavar="N", help="vLLM pipeline parallel size [default: 1; several nodes: searched].")] = None,
    data_parallel_size: Annotated[Optional[str], _opt("--data-parallel-size", "-dp", metavar="N", help="vLLM data parallel size: engine replicas, each with its own KV pool (with --enable-expert-parallel the experts spread over TP x DP) [default: 1].")] = None,
    enable_expert_parallel: Annotated[bool, typer.Option("--enable-expert-parallel", help="vLLM: whole experts per rank over TP x DP ranks instead of TP-sharded experts (mixture-of-experts models).")] = False,
    disable_hybrid_kv_cache_manager: Annotated[bool, typer.Option("--disable-hybrid-kv-cache-manager", help="vLLM: sliding-window layers keep every token's KV, not just their window (one KV group).")] = False,
    gpus_per_node: Annotated[Optional[str], _opt("--gpus-per-node", metavar="N", help="Several nodes: --gpu 16xh100-sxm --gpus-per-node 8 plans vLLM with Ray (or --engine llama.cpp: RPC); docs/cluster.md.")] = None,
    cluster: Annotated[Optional[Path], _opt("--cluster", metavar="FILE", help="Several nodes from a YAML file (nodes: [{host, gpu, gpus}], head first); docs/cluster.md.")] = None,
    json_out: Json = False,
    quiet: Quiet = False,
    specs_dir: SpecsDir = None,
) -> None:
    """Estimate the memory MODEL needs and whether it fits the GPU (exit 0 fits, 5 tight, 1 does not)."""
    args = EstimateArgs(**locals())
    raise typer.Exit(run_estimate(args))
