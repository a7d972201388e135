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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .dtypes import F16, F32, Q4_0, Q4_K, Q5_0, Q5_1, Q5_K, Q6_K, Q8_0, Q2_K, Q3_K, StorageType, WeightDtype

if TYPE_CHECKING:
    from .archs.base import Geometry, Tensor

_FALLBACK = {Q4_K: Q5_0, Q5_K: Q5_1, Q6_K: Q8_0, Q2_K: Q4_0, Q3_K: Q4_0}
_NOT_QUANTIZED = {"norm", "bias", "pos_embd", "rel_bias", "conv", "other"}
_MMPROJ = {"vision_tower", "projector"}


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def tensor_types(tensors: list[Tensor], dtype: WeightDtype, geometry: Geometry) -> list[StorageType]:
    """Each tensor's type in a GGUF file of `dtype` (geometry: n_gqa and the 70B rule)."""
    ftype, base = dtype.ftype, dtype.storage
    n_gqa, is_70b = geometry.gguf_n_gqa, geometry.gguf_70b
    tied = not any(t.role == "output" for t in tensors)
    n_attn_v = sum(1 for t in tensors if t.role == "attn_v" and t.component not in _MMPROJ)
    n_ffn_down = sum(1 for t in tensors if t.role == "ffn_down" and t.component not in _MMPROJ)
    i_attn_v = i_ffn_down = 0
    out: list[StorageType] = []
    for t in tensors:
        if len(t.shape) < 2:
            out.append(F32)
            continue
        if t.component in _MMPROJ or t.role in _NOT_QUANTIZED:
            out.append(F16)
            continue
        new = base
        if t.role == "output" or (tied and t.role == "token_embd"):
            if t.row % base.block_size:
                new = Q8_0
            elif base is not Q8_0:
                new = Q6_K
        elif t.role == "attn_v":
            if ftype == "Q2_K":
                new = Q4_K if n_gqa >= 4 else Q3_K
            elif ftype == "Q3_K_M":
                new = Q5_K if i_attn_v < 2 else Q4_K
            elif ftype in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i_attn_v, n_attn_v):
                new = Q6_K
            if is_70b and new in (Q3_K, Q4_K):
                new = Q5_K
            i_attn_v += 1
        elif t.role == "ffn_down":
            i, n = i_ffn_down, n_ffn_down
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
            if ftype == "Q2_K":
                new = Q3_K
            elif ftype == "Q3_K_M":
                new = Q4_K
        if t.row % new.block_size:
            fallback = _FALLBACK.get(new, F16)
            new = fallback if t.row % fallback.block_size == 0 else F16
        out.append(new)
    return out
