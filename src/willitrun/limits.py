"""Upper bounds on every count read from a spec, a config.json or a GGUF file.

A file is input, and input may be hostile: 10**12 layers would make a tensor inventory run for
hours, 10**400 overflows every float conversion. Each count below is far above the largest real
model (named per bound) and small enough that every size computed from it stays an exact, small
integer and every per-layer loop stays short. The spec models enforce them (archs/base.py), so
`validate` and the estimator share one rule: a spec that validates can be estimated.
"""

from __future__ import annotations

# Layers of one stack. Largest real: 126 (Llama 3.1 405B), 128 (some MoE decoders).
MAX_LAYERS = 1024
# Attention heads (query or KV) of one layer. Largest real: 128 (Llama 3.1 405B, DeepSeek-V3).
MAX_HEADS = 1024
# Per-head width. Largest real: 256 (Gemma), 512 (Gemma 3n global layers).
MAX_HEAD_DIM = 4096
# Hidden width. Largest real: 25,600 (Falcon-180B is 14,848; GPT-3 175B 12,288; Llama 405B 16,384).
MAX_HIDDEN = 1 << 17
# Feed-forward width. Largest real: 53,248 (Llama 3.1 405B); 73,728 (Grok-1).
MAX_INTERMEDIATE = 1 << 20
# Vocabulary. Largest real: 262,208 (Gemma 3), 256,000 (Gemma 2, Cohere).
MAX_VOCAB = 1 << 22
# Positions (context windows, sliding windows, trained lengths). Largest real: 10,485,760 (Llama 4 Scout).
MAX_POSITIONS = 1 << 24
# Image side in pixels, patch size, anyres pinpoint sides. Largest real pinpoint side: 2,016 (LLaVA-OneVision).
MAX_IMAGE_SIDE = 1 << 14
# Image channels (3 for RGB).
MAX_CHANNELS = 16
# Tiles per image (Llama 3.2 Vision: 4), anyres pinpoints (LLaVA-NeXT: 5), aspect ratios (mllama: 8).
MAX_TILES = 64
MAX_LIST = 1024
# Mel bins of an audio encoder (Whisper large-v3: 128).
MAX_MEL_BINS = 1024
# T5 relative position buckets (32) and their maximum distance (128).
MAX_BUCKETS = 1 << 16
# Routed experts per MoE layer. Largest real: 384 (Kimi K2), 256 (DeepSeek-V3).
MAX_EXPERTS = 1 << 12
# SSM state size, convolution kernel, LoRA ranks of latent attention: widths like head_dim.
MAX_STATE = 1 << 14
# A declared parameter count: 2**50 is a thousand times the largest model released (~2T).
MAX_PARAMETERS = 1 << 50

# Request sizes (memory.Request): the context is bounded by positions above, batch and beams by
# something no GPU could hold; images per prompt as tiles.
MAX_CONTEXT = MAX_POSITIONS
MAX_BATCH = 1 << 20
MAX_BEAMS = 1024
MAX_IMAGES = 1024
# Cards of one request (--gpu NxGPU, a cluster node's GPUs) and the most the `gpus` answers search:
# 8 cards are a node, 64 are 8 nodes.
MAX_CARDS = 64
# Video frames of one request (Qwen2-VL's video processor samples at most 768 frames by default).
MAX_VIDEO_FRAMES = 1 << 16

BOUNDS = {
    "layers": MAX_LAYERS,
    "heads": MAX_HEADS,
    "head_dim": MAX_HEAD_DIM,
    "hidden": MAX_HIDDEN,
    "intermediate": MAX_INTERMEDIATE,
    "vocab": MAX_VOCAB,
    "positions": MAX_POSITIONS,
    "image_side": MAX_IMAGE_SIDE,
    "channels": MAX_CHANNELS,
    "tiles": MAX_TILES,
    "list": MAX_LIST,
    "mel_bins": MAX_MEL_BINS,
    "experts": MAX_EXPERTS,
    "state": MAX_STATE,
    "buckets": MAX_BUCKETS,
    "parameters": MAX_PARAMETERS,
}
