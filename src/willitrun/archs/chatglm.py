"""ChatGLM3 and GLM-4 (remote code, model_type `chatglm`: ChatGLMForConditionalGeneration; transformers ships only
the later `glm` / `glm4` ports): Llama's layer under other names. One fused `query_key_value` projection of
heads x kv_channels queries and, with `multi_query_attention`, multi_query_group_num x kv_channels keys and values
(biased when add_bias_linear or add_qkv_bias), `dense` (biased when add_bias_linear), a SwiGLU MLP whose gate and
up are one `dense_h_to_4h` of 2 x ffn_hidden_size, RMSNorms (LayerNorms when `rmsnorm` is false), a final norm when
`post_layer_norm` and an untied `output_layer` (THUDM/chatglm3-6b modeling_chatglm.py: SelfAttention, MLP,
GLMBlock, GLMTransformer, ChatGLMModel). llama.cpp loads these files as `chatglm` (src/llama-arch.cpp
LLM_ARCH_CHATGLM; convert_hf_to_gguf.py ChatGLMModel also writes glm-4-9b-chat's remote-code checkpoint so)."""

from __future__ import annotations

from typing import Any, Literal

from ..records import model_validator
from .base import HeadDim, Heads, Intermediate, Layers, Positions, Vocab
from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass, WeightRules
from .llama import Anatomy, DecoderConfig

# ChatGLMConfig's name -> the generic decoder's (ChatGLMModel reads them so: num_layers layers of GLMBlock,
# padded_vocab_size embeddings, ffn_hidden_size MLP, kv_channels per head, seq_length positions)
RENAMED = {
    "num_layers": "num_hidden_layers",
    "padded_vocab_size": "vocab_size",
    "ffn_hidden_size": "intermediate_size",
    "kv_channels": "head_dim",
    "seq_length": "max_position_embeddings",
}


class ChatGLMConfig(DecoderConfig):
    """ChatGLMConfig fields (the Hub's configuration_chatglm.py, never executed): its own names are read and
    carried over to the generic decoder's (RENAMED); a spec may give either, not two different values."""

    model_type: Literal["chatglm"] | None = None
    num_layers: Layers | None = None
    padded_vocab_size: Vocab | None = None
    ffn_hidden_size: Intermediate | None = None
    kv_channels: HeadDim | None = None
    seq_length: Positions | None = None
    rmsnorm: bool = True
    post_layer_norm: Literal[True] = True  # every released checkpoint; without it the model has no final norm
    add_bias_linear: bool = False
    add_qkv_bias: bool = False
    multi_query_attention: bool = False
    multi_query_group_num: Heads = 1
    tie_word_embeddings: Literal[False] = False  # ChatGLMModel's output_layer is its own Linear

    @model_validator(mode="before")
    @classmethod
    def _rename(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for own, generic in RENAMED.items():
            if out.get(own) is None:
                continue
            if out.get(generic) is not None and out[generic] != out[own]:
                raise ValueError(f"{own} ({out[own]}) and {generic} ({out[generic]}) differ")
            out[generic] = out[own]
        if out.get("multi_query_attention") and out.get("num_key_value_heads") is None:
            out["num_key_value_heads"] = out.get("multi_query_group_num", 1)
        return out

    @property
    def anatomy(self) -> Anatomy:
        b = self.add_bias_linear
        return Anatomy(
            qkv_bias=b or self.add_qkv_bias,
            o_bias=b,
            mlp_bias=b,
            fused_qkv=True,
            fused_gate_up=True,
            norm_bias=not self.rmsnorm,
        )


class ChatGLMSpec(DecoderSpec):
    architecture: Literal["chatglm"]
    config: ChatGLMConfig


# transformer.embedding.word_embeddings, transformer.encoder.layers.N.*, transformer.encoder.final_layernorm,
# transformer.output_layer; rotary_pos_emb.inv_freq is a buffer some checkpoints store
WEIGHT_RULES: WeightRules = (
    (r"transformer\.embedding\.word_embeddings\.weight", "embeddings"),
    (r"transformer\.encoder\.(?:layers\.\d+\..+|final_layernorm\.(?:weight|bias))", "decoder"),
    (r"transformer\.output_layer\.weight", "lm_head"),
    (r"transformer\.rotary_pos_emb\.inv_freq", None),
)

FAMILY = decoder_family(
    __name__,
    "chatglm",
    ChatGLMSpec,
    ConfigClass(
        "ChatGLMConfig",
        "chatglm/configuration_chatglm.py",
        ChatGLMConfig,
        {
            "num_layers": 28,
            "padded_vocab_size": 65024,
            "hidden_size": 4096,
            "ffn_hidden_size": 13696,
            "kv_channels": 128,
            "num_attention_heads": 32,
            "seq_length": 2048,
            "rmsnorm": True,
            "post_layer_norm": True,
            "add_bias_linear": False,
            "add_qkv_bias": False,
            "multi_query_attention": False,
            "multi_query_group_num": 1,
            "tie_word_embeddings": False,
        },
        remote="https://huggingface.co/THUDM/chatglm3-6b/blob/main/configuration_chatglm.py",
    ),
    gguf=("chatglm",),
    weight_rules=WEIGHT_RULES,
)
