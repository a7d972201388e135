"""GPT-NeoX (GPTNeoXForCausalLM: Pythia, GPT-NeoX-20B, many 2023 fine-tunes): one fused query_key_value
projection (3 x hidden) and an output projection (dense), both biased when `attention_bias` (true by
default); LayerNorms with a bias before attention and MLP (both exist whether or not
`use_parallel_residual` runs them in parallel); a plain MLP (dense_h_to_4h, dense_4h_to_h) with biases;
final_layer_norm; no KV grouping (head size hidden_size / num_attention_heads) (transformers
models/gpt_neox/modeling_gpt_neox.py)."""

from __future__ import annotations

from typing import Literal

from .decoder import DecoderSpec, decoder_family
from .family import ConfigClass
from .llama import Anatomy, DecoderConfig


class GPTNeoXConfig(DecoderConfig):
    """GPTNeoXConfig fields (transformers models/gpt_neox/configuration_gpt_neox.py)."""

    model_type: Literal["gpt_neox"] | None = None
    hidden_act: Literal["gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "relu", "silu"] = "gelu"
    attention_bias: bool = True
    use_parallel_residual: bool = True  # changes the order of the blocks, not their weights

    @property
    def anatomy(self) -> Anatomy:
        b = self.attention_bias
        return Anatomy(qkv_bias=b, o_bias=b, fused_qkv=True, norm_bias=True, gated=False, mlp_bias=True)


class GPTNeoXSpec(DecoderSpec):
    architecture: Literal["gpt_neox"]
    config: GPTNeoXConfig


FAMILY = decoder_family(
    __name__,
    "gpt_neox",
    GPTNeoXSpec,
    ConfigClass(
        "GPTNeoXConfig",
        "gpt_neox/configuration_gpt_neox.py",
        GPTNeoXConfig,
        {
            "vocab_size": 50432,
            "hidden_size": 6144,
            "intermediate_size": 24576,
            "num_hidden_layers": 44,
            "num_attention_heads": 64,
            "max_position_embeddings": 2048,
            "hidden_act": "gelu",
            "tie_word_embeddings": False,
            "attention_bias": True,
            "use_parallel_residual": True,
        },
    ),
    gguf=("gptneox",),
    # GPTNeoXModel: gpt_neox.embed_in, gpt_neox.layers.N, gpt_neox.final_layer_norm; the LM head is stored as
    # embed_out (renamed lm_head on load: transformers conversion_mapping.py). Older checkpoints (Pythia) also
    # store each layer's causal-mask and rotary buffers, which are no parameters ("(buffer)").
    weight_rules=(
        (r"(?:gpt_neox\.)?layers\.\d+\.attention\.(?:bias|masked_bias|rotary_emb\.inv_freq)", "(buffer)"),
        (r"(?:gpt_neox\.)?embed_in\.weight", "embeddings"),
        (r"(?:gpt_neox\.)?(?:layers\.\d+\..+|final_layer_norm\.(?:weight|bias))", "decoder"),
        (r"(?:embed_out|lm_head)\.weight", "lm_head"),
    ),
)
