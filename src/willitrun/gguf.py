"""llama.cpp's per-tensor type choice for the GGUF file types (q4_k_m and friends).

A k-quant "mix" keeps some tensors in a higher type, so a file's size must be summed per tensor.
The rules mirror llama.cpp src/llama-quant.cpp (`tensor_allows_quantization`,
`llama_tensor_get_type_impl`, `tensor_type_fallback`) for dense, non-Falcon models:
- only 2-D+ weights are quantized; norms, position embeddings and T5's relative bias are not;
  1-D tensors are stored f32 and other unquantized tensors f16 (convert_hf_to_gguf.py defaults);
- output.weight (or token_embd when the embedding is tied) -> q6_K, unless the file type is q8_0;
- attn_v and ffn_down get more bits in some layers (`use_more_bits`), q3_k_m and q2_k raise a few
  more; 70B-class GQA models raise attn_v from q3_K/q4_K to q5_K; a fused attn_qkv (Phi-3) is raised
  one step (q3_k_m -> q4_K, q4_k_m -> q5_K, q5_k_m -> q6_K);
- a row length that is not a multiple of the block size falls back (q4_K -> q5_0, q6_K -> q8_0 ...).
Vision towers and projectors live in a separate mmproj file, written f16.

Mixtures of experts (llama.cpp as vendored in llama-cpp-python 0.3.16, src/llama-quant.cpp):
- the router `ffn_gate_inp` is never quantized and convert_hf_to_gguf.py writes it f32;
- the 3-D expert tensors follow the rules of their 2-D names (`name.find("ffn_down")` also matches
  `ffn_down_exps` and `ffn_down_shexp`), with the layer read from the tensor's name (`layer_info`);
- 8-expert models (Mixtral) raise attn_v and attn_k to q8_0 and attn_output to q5_K in the
  q2_k/q3_k_m/q4_k_m/iq3_xxs/iq4_xs mixes;
- MXFP4_MOE (llama-quantize's gpt-oss type): 3-D expert tensors MXFP4, every other quantized tensor
  and the output q8_0.
i-quant files are assumed made with an importance matrix (llama-quantize refuses iq2_xxs without
one; the published iq files are made with one), which matters for iq3_xxs's attn_v and iq4_xs's
first ffn_down layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .dtypes import (
    F16,
    F32,
    IQ2_S,
    IQ2_XXS,
    IQ3_S,
    IQ3_XXS,
    IQ4_NL,
    IQ4_XS,
    MXFP4,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_0,
    Q5_1,
    Q5_K,
    Q6_K,
    Q8_0,
    StorageType,
    WeightDtype,
)

if TYPE_CHECKING:
    from .archs.base import Geometry, Tensor

_FALLBACK = {
    Q4_K: Q5_0,
    Q5_K: Q5_1,
    Q6_K: Q8_0,
    Q2_K: IQ4_NL,
    Q3_K: IQ4_NL,
    IQ2_XXS: IQ4_NL,
    IQ2_S: IQ4_NL,
    IQ3_XXS: IQ4_NL,
    IQ3_S: IQ4_NL,
    IQ4_XS: IQ4_NL,
}
_NOT_QUANTIZED = {"norm", "bias", "pos_embd", "rel_bias", "conv", "other"}
_IQ2 = ("IQ2_XXS",)
_N_EXPERT_8_ATTN_OUTPUT = ("Q2_K", "Q3_K_M", "Q4_K_M", "IQ3_XXS", "IQ4_XS")
_MMPROJ = {"vision_tower", "projector"}


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def tensor_types(tensors: list[Tensor], dtype: WeightDtype, geometry: Geometry) -> list[StorageType]:
    """Each tensor's type in a GGUF file of `dtype` (geometry: n_gqa, the 70B rule, experts)."""
    ftype, base = dtype.ftype, dtype.storage
    n_gqa, is_70b = geometry.gguf_n_gqa, geometry.gguf_70b
    n_expert = max(1, geometry.experts)
    tied = not any(t.role == "output" for t in tensors)
    n_attn_v = sum(1 for t in tensors if t.role == "attn_v" and t.component not in _MMPROJ)
    n_ffn_down = sum(1 for t in tensors if t.role == "ffn_down" and t.component not in _MMPROJ)
    if n_expert > 1:  # llama-quant.cpp: n_ffn_down = n_layer; layer_info reads the layer from the name
        n_ffn_down = geometry.decoder_layers
    i_attn_v = i_ffn_down = 0
    out: list[StorageType] = []
    for t in tensors:
        if len(t.shape) < 2 or t.role == "ffn_gate_inp":
            out.append(F32)
            continue
        if t.component in _MMPROJ or t.role in _NOT_QUANTIZED:
            out.append(F16)
            continue
        new = base
        is_down = t.role in ("ffn_down", "ffn_down_exps")
        if t.role == "output" or (tied and t.role == "token_embd"):
            if ftype == "MXFP4_MOE" or t.row % base.block_size:
                new = Q8_0
            elif ftype in _IQ2 or ftype == "IQ3_XXS":
                new = Q5_K
            elif base is not Q8_0:
                new = Q6_K
        elif ftype == "MXFP4_MOE":
            new = MXFP4 if len(t.shape) > 2 else Q8_0
        elif t.role == "token_embd":
            if ftype in _IQ2:
                new = Q2_K
            elif ftype == "IQ3_XXS":
                new = IQ3_S
        elif ftype in _IQ2:
            if t.role == "attn_v":
                new = Q4_K if n_gqa >= 4 or n_expert >= 4 else Q2_K
                i_attn_v += 1
            elif n_expert == 8 and t.role == "attn_k":
                new = Q4_K
            elif is_down:
                if i_ffn_down < n_ffn_down // 8:
                    new = Q2_K
                i_ffn_down += 1
            elif t.role == "attn_output" and n_expert == 8:
                new = Q5_K
        elif t.role == "attn_v":
            if ftype == "Q2_K":
                new = Q4_K if n_gqa >= 4 else Q3_K
            elif ftype == "IQ3_XXS":
                new = Q4_K if n_gqa >= 4 else IQ3_XXS  # with an imatrix (IQ3_S without)
            elif ftype == "Q3_K_M":
                new = Q5_K if i_attn_v < 2 else Q4_K
            elif ftype == "IQ4_XS" and n_gqa >= 4:
                new = Q5_K
            elif ftype in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i_attn_v, n_attn_v):
                new = Q6_K
            if is_70b and new in (Q3_K, Q4_K):
                new = Q5_K
            if n_expert == 8:
                new = Q8_0
            i_attn_v += 1
        elif t.role == "attn_k":
            if n_expert == 8:
                new = Q8_0
            elif ftype == "IQ3_XXS":
                new = IQ2_S
        elif t.role == "attn_q":
            if ftype == "IQ3_XXS":
                new = IQ2_S
        elif is_down:
            i, n = (t.layer or 0, n_ffn_down) if n_expert > 1 else (i_ffn_down, n_ffn_down)
            if ftype == "Q2_K":
                new = Q3_K
            elif ftype == "Q3_K_M":
                new = Q5_K if i < n // 16 else Q4_K
            elif ftype in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, n):
                new = Q6_K
            i_ffn_down += 1
        elif t.role == "attn_qkv":
            # fused q/k/v (Phi-3): llama-quant.cpp `name.find("attn_qkv.weight")`
            if ftype == "Q3_K_M":
                new = Q4_K
            elif ftype == "Q4_K_M":
                new = Q5_K
            elif ftype == "Q5_K_M":
                new = Q6_K
        elif t.role == "attn_output":
            if n_expert == 8:
                if ftype in _N_EXPERT_8_ATTN_OUTPUT:
                    new = Q5_K
            elif ftype == "Q2_K":
                new = Q3_K
            elif ftype == "IQ3_XXS":
                new = IQ3_S
            elif ftype == "Q3_K_M":
                new = Q4_K
        if t.row % new.block_size:
            fallback = _FALLBACK.get(new, F16)
            new = fallback if t.row % fallback.block_size == 0 else F16
        out.append(new)
    return out
