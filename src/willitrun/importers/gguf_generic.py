"""Any GGUF llama.cpp writes, without a family: weights from the tensor table, caches from the metadata.

The keys are llama.cpp's (gguf-py/gguf/constants.py Keys.LLM / Attention / SSM / WKV / ShortConv) and are read
as src/llama-model.cpp and src/llama-hparams.cpp read them (ggml-org/llama.cpp, commit 01b77b57):
- `<arch>.block_count` layers of `<arch>.embedding_length`; `attention.head_count` and `head_count_kv` are
  a scalar or one value per layer (`get_key_or_arr`); a layer with 0 KV heads keeps no attention cache;
- `attention.key_length` / `value_length` (default embedding_length / head_count: n_embd_head_k / _v);
- `attention.sliding_window` and `attention.sliding_window_pattern`, a period (`set_swa_pattern(n)`: layer il
  slides when n == 0 or il % n < n - 1) or one flag per layer; where a file has a window but no pattern,
  the period llama.cpp's loader hard-codes for that architecture (_SWA_PERIOD), else every layer in full;
- `attention.kv_lora_rank` (multi-head latent attention: the cache holds the latent and the rope key);
- recurrent state per sequence, constant in the context (llama-hparams.cpp n_embd_r / n_embd_s):
  RWKV (`wkv.head_size`): token_shift_count x n_embd and n_embd x head_size; LFM2 (`shortconv.l_cache`):
  n_embd x (l_cache - 1); Kimi Delta Attention (`kda.head_dim`, kimi-linear): 3 x (d_conv - 1) x n_head x head_dim
  and head_dim^2 x n_head on the layers with 0 KV heads; Mamba and Gated DeltaNet (`ssm.*`): (d_conv - 1) x (d_inner + 2 n_group d_state)
  and d_state x d_inner; the recurrent layers are those with 0 KV heads, or those `full_attention_interval`
  leaves out (qwen3next), or every layer of a file with no attention heads;
- `expert_count` / `expert_used_count` (0 is a dense model, as llama.cpp loads it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..archs.family import IGNORED_ON_LOAD, GGUFRules
from ..errors import SpecError
from ..files import safe_text
from ..limits import MAX_LAYERS  # a count read from a file is bounded before any loop
from .gguf_file import NOT_PARAMETERS, GGUFHeader
from .weights import COMPONENT_RULES, StoredTensor

# What llama.cpp's loader knows that a file's metadata does not say (set_swa_pattern(n) for files without a
# pattern key, Llama 4's chunks, layers without a cache) is declared by the family that owns the architecture
# name (archs/family.py: GGUFRules, e.g. archs/gemma2.py), found through `declared(arch)`.
_ROLES = (
    "attn_qkv",
    "attn_q_a",
    "attn_q_b",
    "attn_kv_a_mqa",
    "attn_kv_b",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_gate_inp",
    "ffn_gate_exps",
    "ffn_up_exps",
    "ffn_down_exps",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
    "ssm_in",
    "ssm_out",
    "ssm_x",
    "ssm_dt",
)
GENERIC_RULES = "gguf:generic"
# the input layer's lookup tables: llama.cpp keeps them in host memory (src/llama-arch.cpp LLM_TENSOR_INFO:
# LLM_TENSOR_TOKEN_EMBD and LLM_TENSOR_PER_LAYER_TOKEN_EMBD are LLM_TENSOR_LAYER_INPUT, GGML_OP_GET_ROWS)
INPUT_TABLES = ("token_embd.weight", "per_layer_token_embd.weight")
COMPONENT_RULES[GENERIC_RULES] = [
    # the trailing layers llama.cpp's loader skips (skipped_from: weights_override's `layers`)
    (r"blk\.(?P<layer>\d+)\..+", IGNORED_ON_LOAD),
    (r"(?:per_layer_)?token_embd\.weight", "embeddings"),
    (r"output\.weight", "lm_head"),
    (r".+", "decoder"),
]


def _count(meta: dict[str, Any], key: str, path: Path, default: int | None = None) -> int:
    value = meta.get(key, default)
    if type(value) is not int or not 0 <= value < 1 << 31:
        what = "missing" if value is None else f"{value!r} is not a count"
        raise SpecError(f"{path}: {key}: {what}")
    return value


def _per_layer(meta: dict[str, Any], key: str, n: int, path: Path, default: int | None = None) -> list[int]:
    """A scalar or one count per layer (llama.cpp get_key_or_arr), as one count per layer."""
    value = meta.get(key, default)
    if isinstance(value, list):
        if len(value) != n or not all(type(v) is int and 0 <= v < 1 << 31 for v in value):
            raise SpecError(f"{path}: {key}: expected {n} counts, one per layer")
        return list(value)
    return [_count(meta, key, path, default)] * n


def _role(t: StoredTensor) -> str:
    if t.name == "token_embd.weight":
        return "token_embd"
    if t.name == "per_layer_token_embd.weight":
        return "other"  # Gemma 3n / 4's per-layer embeddings: a second input table (an engine places it as one)
    if t.name == "output.weight":
        return "output"
    if len(t.shape) == 1:
        return "bias" if t.name.endswith(".bias") else "norm"
    parts = t.name.split(".")
    base = parts[2] if len(parts) > 2 and parts[0] == "blk" else parts[0]
    base = base.removesuffix("_shexp")  # a shared expert is a plain MLP
    return base if base in _ROLES else "ffn_up"  # any other matrix: quantized at the file type's base type


def _layer(name: str) -> int | None:
    parts = name.split(".", 2)
    return int(parts[1]) if len(parts) > 2 and parts[0] == "blk" and parts[1].isdigit() and len(parts[1]) < 10 else None


def _tensors(tensors: list[StoredTensor], skipped: int | None = None) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, tuple[int, ...]], int] = {}
    for t in tensors:
        layer = _layer(t.name)
        if t.name in NOT_PARAMETERS or (skipped is not None and layer is not None and layer >= skipped):
            continue
        component = "embeddings" if t.name in INPUT_TABLES else "lm_head" if t.name == "output.weight" else "decoder"
        key = (component, _role(t), tuple(t.shape))
        groups[key] = groups.get(key, 0) + 1
    return [{"component": c, "role": r, "shape": list(s), "count": n} for (c, r, s), n in groups.items()]


def skipped_from(header: GGUFHeader) -> int | None:
    """The first layer whose tensors llama.cpp's loader skips, or None: a family's `kv_free_tail` layers (GLM-4.5's
    multi-token-prediction layer: llama-model.cpp LLM_ARCH_GLM4_MOE load_tensors, "skip all tensors in the NextN
    layers", flags |= TENSOR_SKIP; the loader then logs "model has unused tensor blk.N... -- ignoring", subtracts
    its bytes from size_data and allocates nothing for it)."""
    meta = header.metadata
    a = meta.get("general.architecture")
    if not isinstance(a, str):
        return None
    _, rules = declared(a)
    if not rules.skips_tail:  # Gemma 4's KV-shared layers keep their weights
        return None
    n, tail = meta.get(f"{a}.block_count"), meta.get(f"{a}.{rules.kv_free_tail}") if rules.kv_free_tail else None
    if type(n) is int and type(tail) is int and 0 < tail < n:
        return n - tail
    return None


def declared(arch: str) -> tuple[tuple[str, ...], GGUFRules]:
    """(the modules of the families declaring GGUF architecture `arch`, what they say its metadata lacks).

    Families are looked up through the registry (archs.families(): every family module, loaded once); two
    families may name one architecture (OLMo 2 and Olmo 3 files are both `olmo2`) but only one may give it rules."""
    if not _DECLARED:
        from .. import archs

        for fam in archs.families():
            for name in fam.gguf_architectures:
                modules, rules = _DECLARED.get(name, ((), GGUFRules()))
                mine = fam.gguf_rules.get(name)
                if mine is not None and mine != rules and rules != GGUFRules():
                    raise TypeError(f"GGUF architecture {name!r}: rules declared by {modules} and {fam.module}")
                _DECLARED[name] = ((*modules, fam.module), mine or rules)
    return _DECLARED.get(arch, ((), GGUFRules()))


_DECLARED: dict[str, tuple[tuple[str, ...], GGUFRules]] = {}


def _swa(meta: dict[str, Any], a: str, n: int, path: Path, rules: GGUFRules) -> tuple[list[bool], int | None, str, str]:
    """(per-layer sliding flags, window, kind, where the pattern came from)."""
    window = meta.get(f"{a}.attention.sliding_window")
    if window is not None and (type(window) is not int or not 0 <= window < 1 << 31):
        raise SpecError(f"{path}: {a}.attention.sliding_window: {window!r} is not a window")
    kind = "chunked" if rules.chunked else "sliding"
    pattern = meta.get(f"{a}.attention.sliding_window_pattern")
    if pattern is None and rules.swa is not None:
        loader = rules.swa(n, window)
        if loader is None:
            return [False] * n, None, kind, ""
        size, period = loader
        return (
            [period == 0 or i % period < period - 1 for i in range(n)],
            size,
            kind,
            f"llama.cpp's {a} loader: {kind} window {size}, set_swa_pattern({period})",
        )
    if not window:
        return [False] * n, None, kind, ""
    if isinstance(pattern, list):
        if len(pattern) != n:
            raise SpecError(f"{path}: {a}.attention.sliding_window_pattern: expected {n} flags, one per layer")
        return [bool(v) for v in pattern], window, kind, f"{a}.attention.sliding_window_pattern (per layer)"
    if pattern is None:
        return (
            [False] * n,
            None,
            kind,
            (f"{a}.attention.sliding_window {window} without a pattern: every layer counted in full (an upper bound)"),
        )
    if type(pattern) is not int or not 0 <= pattern < 1 << 31:  # any period: llama.cpp takes il % n
        raise SpecError(f"{path}: {a}.attention.sliding_window_pattern: {pattern!r} is not a period")
    flags = [pattern == 0 or i % pattern < pattern - 1 for i in range(n)]
    return flags, window, kind, f"{a}.attention.sliding_window_pattern {pattern}"


def _recurrent(
    meta: dict[str, Any], a: str, n: int, n_embd: int, kv: list[int], ff: list[int], n_head: int, path: Path
) -> tuple[list[bool], bool, int, int, str]:
    """(which layers are recurrent, whether a recurrent layer has no attention, conv elements, state elements
    per layer and sequence, what they are)."""
    wkv = meta.get(f"{a}.wkv.head_size")
    if wkv:
        head = _count(meta, f"{a}.wkv.head_size", path)
        shift = _count(meta, f"{a}.token_shift_count", path, 2)
        return [True] * n, True, shift * n_embd, n_embd * head, "RWKV token shift and wkv state"
    l_cache = meta.get(f"{a}.shortconv.l_cache")
    if l_cache:
        l_cache = _count(meta, f"{a}.shortconv.l_cache", path)
        return [k == 0 for k in kv], True, n_embd * max(0, l_cache - 1), 0, "short-convolution state"
    if meta.get(f"{a}.kda.head_dim"):
        # Kimi Delta Attention (kimi-linear): the layers with no KV heads are recurrent (llama_model_kimi_linear::
        # load_arch_hparams: is_recr = n_head_kv(il) == 0); a conv state over q, k and v of
        # n_embd_r = 3 x (ssm_d_conv - 1, or 3 when the file has no kernel) x n_head x head_dim and a delta-rule state
        # of n_embd_s = head_dim^2 x n_head (llama-hparams.cpp n_embd_r / n_embd_s, the n_embd_head_kda branches)
        head = _count(meta, f"{a}.kda.head_dim", path)
        d_conv = _count(meta, f"{a}.ssm.conv_kernel", path, 0)
        conv = 3 * (d_conv - 1 if d_conv > 0 else 3) * n_head * head
        return [k == 0 for k in kv], True, conv, head * head * n_head, "KDA conv and delta-rule state"
    if f"{a}.ssm.conv_kernel" not in meta and f"{a}.ssm.state_size" not in meta:
        return [False] * n, False, 0, 0, ""
    d_conv = _count(meta, f"{a}.ssm.conv_kernel", path, 0)
    d_inner = _count(meta, f"{a}.ssm.inner_size", path)
    d_state = _count(meta, f"{a}.ssm.state_size", path)
    groups = _count(meta, f"{a}.ssm.group_count", path, 0)
    interval = meta.get(f"{a}.full_attention_interval")
    if type(interval) is not int or interval <= 0:
        interval = 0
    if interval:
        recurrent = [(i + 1) % interval != 0 for i in range(n)]
    elif isinstance(meta.get(f"{a}.feed_forward_length"), list):
        # nemotron_h: "a layer is recurrent IFF the n_head_kv value is set to 0 and the n_ff value is set to 0"
        # (llama-model.cpp); a layer with neither is an MLP layer
        recurrent = [k == 0 and f == 0 for k, f in zip(kv, ff, strict=True)]
    elif any(kv) and not all(kv):
        recurrent = [k == 0 for k in kv]
    else:
        recurrent = [True] * n  # Mamba (no attention), or Falcon-H1 (attention and SSM in every layer)
    conv = max(0, d_conv - 1) * (d_inner + 2 * groups * d_state)
    return recurrent, bool(interval), conv, d_state * d_inner, "conv and SSM state"


def generic_config(header: GGUFHeader, path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The `config` block of a `generic` spec (archs/generic.py) and the source of each number."""
    meta = header.metadata
    a = meta["general.architecture"]
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", a):  # printed and used in key names: llama.cpp's are short ids
        raise SpecError(f"{path}: general.architecture {safe_text(a[:64])!r} is not an architecture name")
    n = _count(meta, f"{a}.block_count", path)
    if not 0 < n <= MAX_LAYERS:
        raise SpecError(f"{path}: {a}.block_count {n} is not between 1 and {MAX_LAYERS}")
    n_embd = _count(meta, f"{a}.embedding_length", path)
    if not n_embd:
        raise SpecError(f"{path}: {a}.embedding_length: 0 is not a width")
    heads = _per_layer(meta, f"{a}.attention.head_count", n, path, 0)
    kv = _per_layer(meta, f"{a}.attention.head_count_kv", n, path, max(heads))
    if not max(heads):
        kv = [0] * n
    n_head = max(heads) or 1
    key_len = _count(meta, f"{a}.attention.key_length", path, n_embd // n_head)
    value_len = _count(meta, f"{a}.attention.value_length", path, key_len)
    # the sliding layers' own head size where the file gives one (llama-hparams: n_embd_head_k(il) is
    # n_embd_head_k_swa for a sliding layer; Gemma 4 writes key_length 512 for its full layers, key_length_swa 256)
    key_len_swa = _count(meta, f"{a}.attention.key_length_swa", path, key_len)
    value_len_swa = _count(
        meta,
        f"{a}.attention.value_length_swa",
        path,
        key_len_swa if f"{a}.attention.key_length_swa" in meta else value_len,
    )
    sources = {
        f"config.{f}": f"{path}: {k}"
        for f, k in (
            ("num_hidden_layers", f"{a}.block_count"),
            ("hidden_size", f"{a}.embedding_length"),
            ("layers", f"{a}.attention.head_count_kv, key_length, value_length, sliding_window, ssm.*"),
        )
    }
    told: list[str] = []
    # multi-head latent attention (deepseek2, and the MLA files of kimi / glm): the latent and the rope key.
    # Files converted since llama.cpp's MLA change write key_length = kv_lora_rank + rope dims and the per-head
    # sizes as key_length_mla / value_length_mla; older ones write the per-head sizes as key/value_length.
    mla = None
    modules, rules = declared(a)
    rank = meta.get(f"{a}.attention.kv_lora_rank")
    if rank and not rules.latent_cache:
        told.append(f"llama.cpp's {a} graph caches every head's keys and values, not the kv_lora_rank latent")
    elif rank:
        rank = _count(meta, f"{a}.attention.kv_lora_rank", path)
        rope = _count(meta, f"{a}.rope.dimension_count", path)
        qk = _count(meta, f"{a}.attention.key_length_mla", path, key_len)
        v = _count(meta, f"{a}.attention.value_length_mla", path, value_len)
        mla = [rank, rope, n_head, qk, v]
        told.append(f"latent attention: the cache holds kv_lora_rank {rank} + rope {rope} per position")
    swa, window, swa_kind, swa_where = _swa(meta, a, n, path, rules)
    if swa_where:
        told.append(swa_where)
    ff = _per_layer(meta, f"{a}.feed_forward_length", n, path, 0)
    recurrent, exclusive, conv, state, what = _recurrent(meta, a, n, n_embd, kv, ff, heads[0], path)
    if what:
        told.append(f"{sum(recurrent)} layers keep a {what}")
    tail = _count(meta, f"{a}.{rules.kv_free_tail}", path, 0) if rules.kv_free_tail else 0
    if 0 < tail < n:
        kv = kv[: n - tail] + [0] * tail
        told.append(
            f"llama.cpp's {a} loader gives the last {tail} layers ({a}.{rules.kv_free_tail}) no cache"
            + (" and skips their tensors (TENSOR_SKIP): not counted" if rules.skips_tail else "")
        )
    if rules.kv_layers is not None and 0 < rules.kv_layers < n:
        kv = kv[: rules.kv_layers] + [0] * (n - rules.kv_layers)
        told.append(f"llama.cpp's {a} loader gives only the first {rules.kv_layers} layers a cache")
    layers: list[dict[str, Any]] = []
    for i in range(n):
        layer: dict[str, Any] = {"kind": "none"}
        if kv[i] and not (recurrent[i] and exclusive):
            if mla:
                layer = {"kind": "full", "kv_heads": 1, "key_dim": mla[0], "value_dim": mla[1]}
            else:
                layer = {
                    "kind": swa_kind if swa[i] else "full",
                    "kv_heads": kv[i],
                    "key_dim": key_len_swa if swa[i] else key_len,
                    "value_dim": value_len_swa if swa[i] else value_len,
                }
                if swa[i]:
                    layer["window"] = window
        if recurrent[i]:
            layer.update(conv_state=conv, ssm_state=state)
        if layers and {k: v for k, v in layers[-1].items() if k != "count"} == layer:
            layers[-1]["count"] += 1
        else:
            layers.append({**layer, "count": 1})
    tensors = {t.name: t for t in header.tensors}
    embd = tensors.get("token_embd.weight")
    vocab = meta.get(f"{a}.vocab_size")
    if embd is not None and len(embd.shape) == 2:
        vocab = embd.shape[0]
        sources["config.vocab_size"] = f"{path}: token_embd.weight shape"
    elif type(vocab) is int and vocab > 0:
        sources["config.vocab_size"] = f"{path}: {a}.vocab_size"
    else:
        raise SpecError(f"{path}: no 2-D token_embd.weight tensor and no {a}.vocab_size: not a language model file")
    expert_ff = _count(meta, f"{a}.expert_feed_forward_length", path, 0)
    experts = _count(meta, f"{a}.expert_count", path, 0)
    used = _count(meta, f"{a}.expert_used_count", path, 0) if experts else 0
    if used > experts:
        raise SpecError(f"{path}: {a}.expert_used_count {used} is more than {a}.expert_count {experts}")
    intermediate = (
        (expert_ff if experts and expert_ff else max(ff)) or _count(meta, f"{a}.ssm.inner_size", path, 0) or 4 * n_embd
    )
    if not (max(ff) or expert_ff):
        told.append("no feed_forward_length: the compute estimate takes " + f"{intermediate:,} as the MLP width")
    context = meta.get(f"{a}.context_length")
    cfg: dict[str, Any] = {
        "source_architecture": a,
        "counted_by": "gguf-metadata",
        "provenance": "",
        "vocab_size": vocab,
        "hidden_size": n_embd,
        "num_attention_heads": n_head,
        "intermediate_size": intermediate,
        "tie_word_embeddings": "output.weight" not in tensors,
        "layers": layers,
        "tensors": _tensors(header.tensors, n - tail if 0 < tail < n else None),
        "num_experts": experts,
        "num_experts_per_tok": used,
        "state_f32": bool(state),  # llama.cpp keeps recurrent state in f32 (llama-memory-recurrent.cpp)
    }
    if type(context) is int and 0 < context < 1 << 31:
        cfg["max_position_embeddings"] = context
        sources["config.max_position_embeddings"] = f"{path}: {a}.context_length"
    if mla:
        cfg["mla"] = mla
    owner = (
        f"GGUF architecture {a!r} of willitrun's {' and '.join(m.rsplit('.', 1)[-1] for m in modules)} family "
        f"({', '.join(modules)}): read from the GGUF's metadata with what the family declares llama.cpp's loader "
        "adds (weights: the tensor table's exact bytes; caches: "
        if modules
        else f"GGUF architecture {a!r} has no willitrun family: read from the GGUF's metadata; "
        "no family-specific rules (weights: the tensor table's exact bytes; caches: "
    )
    cfg["provenance"] = (
        owner
        + f"{a}.* keys as llama.cpp reads them; compute: a generic decoder's estimate)"
        + (f"; {'; '.join(told)}" if told else "")
        + "."
    )
    return cfg, sources
