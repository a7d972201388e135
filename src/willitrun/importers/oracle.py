"""transformers as the oracle (issue 20 §4): a config.json whose model_type has no willitrun family.

With torch and transformers installed (`pip install 'willitrun[exact]'`) the model transformers would build
from the config is built on the meta device (no memory, no weights), and:
- its parameters are counted exactly, per component (by module name: embeddings, decoder layers, lm_head,
  vision tower, projector); a tied LM head counts once, as transformers shares it;
- its caches are measured: a short forward pass on the meta device (in float32, or bfloat16 where a kernel
  needs it) returns the cache object, whose layers say what each keeps: keys and values of
  [batch, kv_heads, positions, head_dim] (DynamicLayer: full attention, growing with the context;
  DynamicSlidingWindowLayer: capped at `sliding_window`; a chunked layer at its chunk; DynamicIndexedLayer also
  its sparse-attention indexer's keys, [batch, positions, index_head_dim]), or a recurrent state
  of fixed size (LinearAttentionLayer's conv_states / recurrent_states); each layer's per-position widths are
  read from the tensors' shapes and extrapolated to any context by that kind.
Remote code never runs: a config with `auto_map`, or a model_type transformers does not ship, is refused in
one line (it would need trust_remote_code). Nothing here is imported unless such a config is given.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from typing import Any

from ..errors import SpecError, UsageError, clip

EXTRA = "pip install 'willitrun[exact]'"
FORWARD_TOKENS = 8  # positions of the measuring forward pass: shapes, not values, are read
# Module-name rules -> willitrun component, first match wins (transformers' naming across model classes).
COMPONENTS: list[tuple[str, str]] = [
    (r"(.*\.)?(lm_head|embed_out)\..*", "lm_head"),
    (r".*(vision_tower|vision_model|visual|image_encoder|vision_encoder|vision)\..*", "vision_tower"),
    (r".*(multi_modal_projector|mm_projector|connector|projector)\..*", "projector"),
    (
        r".*(embed_tokens|wte|wpe|word_embeddings|embed_in|embed_positions|position_embeddings|shared|"
        r"token_embedding|tok_embeddings|embeddings)\..*",
        "embeddings",
    ),
    (r".*", "decoder"),
]
_RULES = [(re.compile(p), c) for p, c in COMPONENTS]


def component_of(name: str) -> str:
    return next(c for p, c in _RULES if p.fullmatch(name))


def available() -> bool:
    """Whether torch and transformers can be imported (without importing them)."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))
    except (ImportError, ValueError):
        return False


def check_no_remote_code(cfg: Mapping[str, Any], model_type: str, source: str) -> None:
    if "auto_map" in cfg:
        raise UsageError(
            f"{source}: model_type {model_type!r} is defined by the model's own code (auto_map): "
            "it needs trust_remote_code, and willitrun never runs a model's code"
        )


# Counts that set how many modules transformers builds: bounded before it builds any (a config.json is untrusted).
_BOUNDS = [
    (re.compile(r".*(layers?|depth)"), "layers"),
    (re.compile(r".*experts?.*"), "experts"),
    (re.compile(r".*heads?"), "heads"),
]


def check_bounds(cfg: Mapping[str, Any], source: str, where: str = "", depth: int = 0) -> None:
    """Refuse a layer, expert or head count beyond willitrun's documented bounds (limits.py), in any sub-config."""
    from .. import limits as L

    limit = {"layers": L.MAX_LAYERS, "experts": L.MAX_EXPERTS, "heads": L.MAX_HEADS}
    if depth > 4:
        raise SpecError(f"{source}: config nested too deeply")
    for key, value in cfg.items():
        if isinstance(value, Mapping):
            check_bounds(value, source, f"{where}{key}.", depth + 1)
        elif type(value) is int:
            kind = next((k for p, k in _BOUNDS if p.fullmatch(str(key))), None)
            if kind is not None and value > limit[kind]:
                raise SpecError(
                    f"{source}: {where}{key}: {value:,} is beyond willitrun's bound for {kind} "
                    f'({limit[kind]:,}; docs/spec-format.md "Bounds")'
                )


def _role(name: str, shape: tuple[int, ...], component: str, vocab: int) -> str:
    if component == "lm_head":
        return "output"
    if len(shape) == 1:
        return "bias" if name.endswith(".bias") else "norm"
    if component == "embeddings" and len(shape) == 2 and shape[0] == vocab:
        return "token_embd"
    return "ffn_up"  # any other matrix: a linear weight, quantized at the base type


def _build(transformers: Any, torch: Any, config: Any, device: str = "meta") -> Any:
    """The model class transformers builds for this config (a causal LM, else image-text-to-text), on `device`."""
    errors = []
    for auto in ("AutoModelForCausalLM", "AutoModelForImageTextToText"):
        try:
            with torch.device(device):
                return getattr(transformers, auto).from_config(config)
        except ValueError as exc:  # "Unrecognized configuration class ... for this kind of AutoModel"
            if not str(exc).startswith("Unrecognized configuration class"):
                raise  # the model class itself refuses this config: said as such by the caller
            errors.append(str(exc).splitlines()[0])
    raise UsageError(
        f"transformers builds no causal or image-text-to-text language model from it ({errors[0][:160]}); "
        "encoder-decoders and encoders without a willitrun family are not answered yet"
    )


def _forward(torch: Any, model: Any) -> tuple[Any, str]:
    """The cache of a FORWARD_TOKENS-token forward pass on the meta device, and the dtype it ran in."""
    ids = torch.ones((1, FORWARD_TOKENS), dtype=torch.long, device="meta")
    last: Exception | None = None
    for dtype in (torch.float32, torch.bfloat16):  # some reference kernels accept bfloat16 only
        try:
            model.to(dtype)
            with torch.no_grad():
                out = model(input_ids=ids, use_cache=True)
        except Exception as exc:  # any failure of the meta pass: the next dtype, then a CPU copy
            last = exc
            continue
        return _cache_of(out), f"{str(dtype).removeprefix('torch.')} on the meta device"
    raise _MetaFailed(f"{type(last).__name__}: {str(last).splitlines()[0][:160] if str(last) else ''}")


class _MetaFailed(Exception):
    pass


def _cache_of(out: Any) -> Any:
    cache = getattr(out, "past_key_values", None) or getattr(out, "cache_params", None)
    if cache is None or not hasattr(cache, "layers"):
        raise SpecError("transformers' forward pass returned no cache with layers to measure")
    return cache


# Fields that size the vocabulary and the MLP, which no cache's shape depends on: shrunk in the CPU copy.
_MLP_FIELDS = ("intermediate_size", "ffn_dim", "n_inner", "d_ff", "ffn_hidden_size")
CPU_COPY_CAP = 1 << 30  # bytes of float32 weights the CPU copy may take (the attention stack at full width)


def _cpu_forward(torch: Any, transformers: Any, config: Any, why: str) -> tuple[Any, str]:
    """A forward pass of a CPU copy whose vocabulary and MLP widths are shrunk (every attention and cache width
    kept), for a model whose meta pass fails (e.g. a `.item()` in its position code)."""
    from transformers.initialization import no_init_weights

    small = config.__class__.from_dict(config.to_dict())
    for c in {id(small): small, id(small.get_text_config()): small.get_text_config()}.values():
        ids = [v for k, v in vars(c).items() if k.endswith("token_id") and type(v) is int]
        vocab = max(64, *(i + 1 for i in ids))
        if type(getattr(c, "vocab_size", None)) is int and c.vocab_size > vocab:
            c.vocab_size = vocab
        for f in _MLP_FIELDS:
            if type(getattr(c, f, None)) is int and getattr(c, f) > 16:
                setattr(c, f, 16)
    n = sum(p.numel() for p in _build(transformers, torch, small).parameters())
    if n * 4 > CPU_COPY_CAP:
        raise SpecError(
            f"the forward pass on the meta device failed ({why}), and a CPU copy would take "
            f"{n * 4 / 2**30:.1f} GiB: caches not measured"
        )
    torch.manual_seed(0)
    with no_init_weights():
        model = _build(transformers, torch, small, "cpu")
    ids = torch.ones((1, FORWARD_TOKENS), dtype=torch.long)
    try:
        with torch.no_grad():
            out = model.eval()(input_ids=ids, use_cache=True)
    except Exception as exc:  # the model's own forward failed on the CPU too
        raise SpecError(
            f"the forward pass failed on the meta device ({why}) and on a CPU copy ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:120] if str(exc) else ''}): caches not measured"
        ) from None
    return _cache_of(out), "float32 on a CPU copy with the vocabulary and MLP shrunk (no cache depends on them)"


def _layers(torch: Any, cache: Any) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Each cache layer's kind and per-position widths (or fixed state), from its tensors' shapes. A cache that
    keeps some state beside `layers` (MiniMaxCache.linear_cache: one tensor per layer) adds it, by index, as
    fixed state of that layer."""
    entries: list[dict[str, Any]] = []
    kinds = {"full": 0, "sliding": 0, "chunked": 0, "recurrent": 0}
    for i, layer in enumerate(cache.layers):
        entry: dict[str, Any] = {"kind": "none"}
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        if isinstance(keys, torch.Tensor) and isinstance(values, torch.Tensor) and keys.numel():
            if keys.dim() != 4 or values.dim() != 4 or keys.shape[1] != values.shape[1]:
                raise SpecError(f"cache layer {i}: keys {tuple(keys.shape)} are not [batch, heads, positions, dim]")
            name = type(layer).__name__
            window = getattr(layer, "sliding_window", None) or getattr(layer, "chunk_size", None)
            kind = "chunked" if "Chunk" in name else "sliding" if window else "full"
            entry = {
                "kind": kind,
                "kv_heads": int(keys.shape[1]),
                "key_dim": int(keys.shape[3]),
                "value_dim": int(values.shape[3]),
            }
            if kind != "full":
                entry["window"] = int(window)  # type: ignore[arg-type]  # a number whenever kind is not full
            kinds[kind] += 1
        indexer = getattr(layer, "indexer_keys", None)  # DynamicIndexedLayer: [batch, positions, index_head_dim]
        if isinstance(indexer, torch.Tensor) and indexer.numel():
            if indexer.dim() != 3:
                raise SpecError(f"cache layer {i}: indexer keys {tuple(indexer.shape)} are not [batch, positions, dim]")
            entry["indexer_dim"] = int(indexer.shape[2])
        conv, rec = getattr(layer, "conv_states", None), getattr(layer, "recurrent_states", None)
        if isinstance(conv, dict) or isinstance(rec, dict):
            entry["conv_state"] = sum(int(t.numel()) for t in (conv or {}).values() if isinstance(t, torch.Tensor))
            entry["ssm_state"] = sum(int(t.numel()) for t in (rec or {}).values() if isinstance(t, torch.Tensor))
        entries.append(entry)
    for attr, value in vars(cache).items():
        if attr == "layers" or not isinstance(value, list) or len(value) > 1 << 12:
            continue
        for i, t in enumerate(value):
            if isinstance(t, torch.Tensor) and t.numel():
                while len(entries) <= i:
                    entries.append({"kind": "none"})
                entries[i]["ssm_state"] = entries[i].get("ssm_state", 0) + int(t.numel())
    kinds["recurrent"] = sum(1 for e in entries if e.get("conv_state") or e.get("ssm_state"))
    out: list[dict[str, Any]] = []
    for entry in entries:
        if out and {k: v for k, v in out[-1].items() if k != "count"} == entry:
            out[-1]["count"] += 1
        else:
            out.append({**entry, "count": 1})
    if not out:
        raise SpecError("transformers' cache has no layers to measure")
    return out, kinds


def _int_attr(config: Any, *names: str) -> int | None:
    for n in names:
        value = getattr(config, n, None)
        if type(value) is int and value > 0:
            return value
    return None


def generic_config(cfg: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The `config` block of a `generic` spec (archs/generic.py) for a config.json transformers knows."""
    model_type = cfg.get("model_type")
    assert isinstance(model_type, str)
    check_no_remote_code(cfg, model_type, source)
    check_bounds(cfg, source)
    if not available():
        raise UsageError(
            f"{source}: model_type {clip(repr(model_type))} has no willitrun family; with torch and "
            f"transformers installed transformers counts it exactly: {EXTRA}"
        )
    import torch
    import transformers
    from transformers import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        raise UsageError(
            f"{source}: transformers {transformers.__version__} does not know model_type {clip(repr(model_type))}: "
            "it would need the model's own code (trust_remote_code), which willitrun never runs"
        )
    try:
        config = CONFIG_MAPPING[model_type].from_dict({k: v for k, v in cfg.items() if k != "model_type"})
    except Exception as exc:  # transformers' own validation of the config: one line
        raise SpecError(f"{source}: transformers refuses this config.json: {str(exc).splitlines()[0][:200]}") from None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    try:
        model = _build(transformers, torch, config)
    except UsageError as exc:
        raise UsageError(f"{source}: model_type {model_type!r}: {exc}") from None
    except Exception as exc:  # a model class that cannot be built from this config
        raise SpecError(
            f"{source}: transformers cannot build {model_type!r} from this config.json: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        ) from None
    vocab = _int_attr(text, "vocab_size") or _int_attr(config, "vocab_size")
    hidden = _int_attr(text, "hidden_size", "d_model", "n_embd", "dim")
    heads = _int_attr(text, "num_attention_heads", "n_head", "n_heads", "num_heads")
    if vocab is None or hidden is None or heads is None:
        raise SpecError(f"{source}: the config transformers built names no vocab_size, hidden_size and heads")
    intermediate = _int_attr(text, "intermediate_size", "ffn_dim", "n_inner", "d_ff", "ffn_hidden_size") or 4 * hidden
    groups: dict[tuple[str, str, tuple[int, ...]], int] = {}
    for name, p in model.named_parameters():  # a shared (tied) parameter is listed once
        shape = tuple(int(d) for d in p.shape)
        component = component_of(name)
        key = (component, _role(name, shape, component, vocab), shape)
        groups[key] = groups.get(key, 0) + 1
    tied = any(
        len(names) > 1 and any(component_of(n) == "lm_head" for n in names) for names in _shared_names(model).values()
    )
    try:
        try:
            cache, ran_in = _forward(torch, model)
        except _MetaFailed as exc:
            cache, ran_in = _cpu_forward(torch, transformers, config, str(exc))
        layers, kinds = _layers(torch, cache)
    except SpecError as exc:
        raise SpecError(f"{source}: {model_type!r}: {exc}") from None
    measured = ", ".join(f"{n} {k}" for k, n in kinds.items() if n)
    experts = _int_attr(text, "num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts") or 0
    used = min(_int_attr(text, "num_experts_per_tok", "moe_topk", "top_k") or 0, experts)
    provenance = (
        f"model_type {model_type!r} has no willitrun family: counted by transformers {transformers.__version__} on the "
        f"meta device ({type(model).__name__}): parameters exact per component (by module name); caches measured from "
        f"a {FORWARD_TOKENS}-token forward pass in {ran_in} ({measured} layers) and extrapolated "
        "per layer kind (full grows with the context, sliding stays at its window, recurrent state is fixed); "
        "compute: a generic decoder's estimate (inferred, not measured)"
        + (
            "; recurrent state sized in float32 (transformers' linear-attention and SSM scans keep float32 states)"
            if kinds["recurrent"]
            else ""
        )
        + "."
    )
    block: dict[str, Any] = {
        "source_architecture": model_type,
        "counted_by": "transformers",
        "provenance": provenance,
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "tie_word_embeddings": tied,
        "layers": layers,
        "tensors": [{"component": c, "role": r, "shape": list(s), "count": n} for (c, r, s), n in groups.items()],
        "num_experts": experts,
        "num_experts_per_tok": used,
        "state_f32": bool(kinds["recurrent"]),
    }
    window = _int_attr(text, "max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
    if window is not None:
        block["max_position_embeddings"] = window
    return block


def _shared_names(model: Any) -> dict[int, list[str]]:
    groups: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    return groups
