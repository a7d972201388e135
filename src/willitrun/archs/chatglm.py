"""ChatGLM3 and GLM-4 (remote code, model_type `chatglm`: ChatGLMForConditionalGeneration; transformers ships only
the later `glm` / `glm4` ports): Llama's layer under other names. One fused `query_key_value` projection of
heads x kv_channels queries and, with `multi_query_attention`, multi_query_group_num x kv_channels keys and values
(biased when add_bias_linear or add_qkv_bias), `dense` (biased when add_bias_linear), a SwiGLU MLP whose gate and
up are one `dense_h_to_4h` of 2 x ffn_hidden_size, RMSNorms (LayerNorms when `rmsnorm` is false), a final norm when
`post_layer_norm` and an untied `output_layer` (THUDM/chatglm3-6b modeling_chatglm.py: SelfAttention, MLP,
GLMBlock, GLMTransformer, ChatGLMModel). llama.cpp loads these files as `chatglm` (src/llama-arch.cpp
LLM_ARCH_CHATGLM; convert_hf_to_gguf.py ChatGLMModel also writes glm-4-9b-chat's remote-code checkpoint so)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from .base import (
    Geometry,
    HeadDim,
    Heads,
    Hidden,
    Intermediate,
    Layers,
    ModelSpecBase,
    Positions,
    Stage,
    Strict,
    Tensor,
    Vocab,
)
from .family import ConfigClass, Family, WeightRules
from .llama import Anatomy, DecoderConfig, decoder_geometry, decoder_lm, lm_stage


class _Decoder(DecoderConfig):
    """The ChatGLM config in the generic decoder's terms."""

    add_bias_linear: bool
    add_qkv_bias: bool
    rmsnorm: bool

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


class ChatGLMConfig(Strict):
    """ChatGLMConfig fields (the Hub's configuration_chatglm.py, never executed), under their own names."""

    model_type: Literal["chatglm"] | None = None
    num_layers: Layers
    padded_vocab_size: Vocab
    hidden_size: Hidden
    ffn_hidden_size: Intermediate
    kv_channels: HeadDim
    num_attention_heads: Heads
    seq_length: Positions
    rmsnorm: bool = True
    post_layer_norm: Literal[True] = True  # every released checkpoint; without it the model has no final norm
    add_bias_linear: bool = False
    add_qkv_bias: bool = False
    multi_query_attention: bool = False
    multi_query_group_num: Heads = 1
    tie_word_embeddings: Literal[False] = False  # ChatGLMModel's output_layer is its own Linear

    @property
    def decoder(self) -> _Decoder:
        return _Decoder(
            vocab_size=self.padded_vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.ffn_hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.multi_query_group_num if self.multi_query_attention else None,
            head_dim=self.kv_channels,
            max_position_embeddings=self.seq_length,
            add_bias_linear=self.add_bias_linear,
            add_qkv_bias=self.add_qkv_bias,
            rmsnorm=self.rmsnorm,
        )


class ChatGLMSpec(ModelSpecBase):
    architecture: Literal["chatglm"]
    config: ChatGLMConfig


def tensors(spec: ChatGLMSpec) -> Iterator[Tensor]:
    return decoder_lm(spec.config.decoder)


def geometry(spec: ChatGLMSpec) -> Geometry:
    return decoder_geometry(spec.config.decoder, spec.architecture)


def image_tokens(spec: ChatGLMSpec, image_size: tuple[int, int] | None) -> int:
    return 0


def cross_source_tokens(spec: ChatGLMSpec, images: int, encoder_tokens: int) -> int:
    return 0


def stages(spec: ChatGLMSpec, context: int, source: int, images: int) -> list[Stage]:
    return [lm_stage(spec.config.decoder, context)]


# transformer.embedding.word_embeddings, transformer.encoder.layers.N.*, transformer.encoder.final_layernorm,
# transformer.output_layer; rotary_pos_emb.inv_freq is a buffer some checkpoints store
WEIGHT_RULES: WeightRules = (
    (r"transformer\.embedding\.word_embeddings\.weight", "embeddings"),
    (r"transformer\.encoder\.(?:layers\.\d+\..+|final_layernorm\.(?:weight|bias))", "decoder"),
    (r"transformer\.output_layer\.weight", "lm_head"),
    (r"transformer\.rotary_pos_emb\.inv_freq", None),
)

FAMILY: Family[ChatGLMSpec] = Family(
    __name__,
    {"chatglm": ChatGLMSpec},
    tensors,
    geometry,
    stages,
    image_tokens,
    cross_source_tokens,
    config_json={
        "chatglm": ConfigClass(
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
        )
    },
    weight_rules={"chatglm": WEIGHT_RULES},
    gguf_architectures=("chatglm",),
)
