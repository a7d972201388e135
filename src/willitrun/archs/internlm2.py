"""InternLM2 / InternLM2.5 (InternLM2ForCausalLM, remote code: transformers ships no InternLM2): Llama's layer with
one fused `wqkv` projection (heads + 2 x KV heads of head_dim rows) and `wo`, both biased when `bias`, a bias-free
SwiGLU feed-forward (w1 gate, w3 up, w2 down) and RMSNorms (internlm/internlm2-chat-7b modeling_internlm2.py:
InternLM2Attention, InternLM2MLP). llama.cpp loads it as `internlm2` (src/llama-arch.cpp LLM_ARCH_INTERNLM2;
convert_hf_to_gguf.py InternLM2Model splits wqkv into attn_q / attn_k / attn_v)."""

from __future__ import annotations

from typing import Literal

from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass, WeightRules
from .llama import Anatomy, DecoderConfig


class InternLM2Config(DecoderConfig):
    """InternLM2Config fields (the Hub's configuration_internlm2.py, never executed)."""

    model_type: Literal["internlm2"] | None = None
    hidden_act: Literal["silu"] = "silu"
    bias: bool = True  # wqkv and wo (InternLM2Attention: nn.Linear(..., bias=config.bias))

    @property
    def anatomy(self) -> Anatomy:
        return Anatomy(qkv_bias=self.bias, o_bias=self.bias, fused_qkv=True)


class InternLM2Spec(DecoderSpec):
    architecture: Literal["internlm2"]
    config: InternLM2Config


# InternLM2ForCausalLM's names: model.tok_embeddings, model.layers.N.{attention.wqkv, attention.wo,
# feed_forward.w1/w2/w3, attention_norm, ffn_norm}, model.norm, output
WEIGHT_RULES: WeightRules = (
    (r"(?:model\.)?tok_embeddings\.weight", "embeddings"),
    (r"(?:model\.)?(?:layers\.\d+\..+|norm\.weight)", "decoder"),
    (r"output\.weight", "lm_head"),
)

FAMILY = decoder_family(
    __name__,
    "internlm2",
    InternLM2Spec,
    ConfigClass(
        "InternLM2Config",
        "internlm2/configuration_internlm2.py",
        InternLM2Config,
        {
            "vocab_size": 103168,
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": None,
            "max_position_embeddings": 2048,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "bias": True,
        },
        # the same class as copied into sgl-project/sglang (srt/configs/internvl.py InternLM2Config)
        remote="https://huggingface.co/internlm/internlm2-chat-7b/blob/main/configuration_internlm2.py",
    ),
    gguf=("internlm2",),
    weight_rules=WEIGHT_RULES,
)
