"""Multi-GPU splits, partial offload and the decode-speed bound, against arithmetic shown here."""

from pathlib import Path

import pytest
import yaml

from tests.answers.test_answers import EMB, KV_TOKEN, LAYER, OVERHEAD, W7B
from tests.conftest import llama
from willitrun import Request, estimate
from willitrun.answers import (
    SYSTEM_BANDWIDTH_BYTES_S,
    Device,
    decode_speed,
    device,
    layer_owners,
    layer_split,
    layout,
    offload,
    offload_speed,
    split,
    split_speed,
    tensor_split,
    tp_problems,
)
from willitrun.dtypes import weight_dtype
from willitrun.errors import UsageError
from willitrun.memory import estimate_resolved, resolve, weight_components

GiB, MiB = 1 << 30, 1 << 20
RTX3090 = Device("rtx3090", "NVIDIA GeForce RTX 3090", 24 * GiB, 936_200_000_000)


def r7b(**req):
    return resolve(llama(), Request(**req))


# ---- tensor parallelism ------------------------------------------------------------------------
def test_tensor_split_llama_2_7b_by_hand():
    r = r7b()
    act = estimate(llama(), context=4096).activations_bytes
    s = tensor_split(r, 4096, 1, 1, [RTX3090] * 2)
    assert s.valid and s.fits and not s.problems and s.duplicated_bytes == 0
    for card in s.cards:
        assert card.weights_bytes == W7B // 2 == 6_738_415_616  # 13,476,831,232 / 2
        assert card.kv_bytes == 4096 * KV_TOKEN // 2 == GiB
        assert card.total_bytes == W7B // 2 + GiB + act + OVERHEAD  # activations and overhead on each card
    s4 = tensor_split(r, 4096, 1, 1, [RTX3090] * 4)
    assert [c.weights_bytes for c in s4.cards] == [W7B // 4] * 4 == [3_369_207_808] * 4


def test_tensor_split_says_which_count_does_not_divide():
    s = tensor_split(r7b(), 4096, 1, 1, [RTX3090] * 3)
    assert not s.valid and not s.fits and s.max_context_tokens == 0
    assert s.problems == (
        "attention heads (32) not divisible by 3",
        "KV heads (32) not divisible by 3, and 3 is not a multiple of 32 (which would replicate them)",
        "intermediate_size (11008) not divisible by 3",
    )
    # KV heads may be replicated: 64 cards are a multiple of 32 (and 11008 = 64 x 172)
    assert tp_problems(llama(), 64) == ["attention heads (32) not divisible by 64"]


def test_tensor_split_replicates_kv_heads_beyond_their_count(catalog):
    # Llama-3-70B: 8 KV heads. On 16 cards each card holds one replicated KV head (vLLM's
    # QKVParallelLinear): its cache is KV / 8 and its K and V projections are kv_proj / 8.
    spec = catalog.resolve("model", "llama-3-70b")
    r = resolve(spec, Request())
    e = estimate(spec, context=4096)
    kv_proj = 80 * 2 * (8 * 128 * 8192) * 2  # layers x (k, v) x (8 heads x 128 x 8192) x bf16
    card = Device("a100-80gb", "A100", 80 * GiB, 2_039_000_000_000)
    s = tensor_split(r, 4096, 1, 1, [card] * 16)
    assert s.valid and e.kv_bytes == 2 * 80 * 1024 * 4096 * 2
    for c in s.cards:
        assert c.kv_bytes == e.kv_bytes // 8
        assert c.weights_bytes == (e.weights_bytes - kv_proj) // 16 + kv_proj // 8
    assert s.duplicated_bytes == (16 // 8 - 1) * (e.kv_bytes + kv_proj)
    assert sum(c.weights_bytes + c.kv_bytes for c in s.cards) == e.weights_bytes + e.kv_bytes + s.duplicated_bytes


def test_tensor_split_max_context_is_exact(catalog):
    spec = catalog.resolve("model", "llama-3.1-8b")
    r = resolve(spec, Request())
    cards = [device(catalog.resolve("gpu", "rtx3060"))] * 2
    s = tensor_split(r, 4096, 1, 1, cards)
    n = s.max_context_tokens
    assert 4096 < n < s.context_limit_tokens
    assert tensor_split(r, n, 1, 1, cards).fits and not tensor_split(r, n + 1, 1, 1, cards).fits


def test_tensor_split_needs_identical_cards():
    with pytest.raises(UsageError, match="identical cards"):
        tensor_split(r7b(), 4096, 1, 1, [RTX3090, Device("b", "b", 16 * GiB)])


# ---- layer split -------------------------------------------------------------------------------
def test_layer_split_llama_2_7b_by_hand():
    # Two equal cards: the first holds the token embeddings, the last the final norm and LM head (as
    # large), so 16 + 16 layers leave the fullest card least full (17 + 15 would add a layer to one)
    s = layer_split(r7b(), 4096, 1, 1, [RTX3090] * 2)
    c0, c1 = s.cards
    assert (c0.layers, c0.first_layer, c0.last_layer, c0.holds_output) == (16, "decoder.0", "decoder.15", False)
    assert (c1.layers, c1.first_layer, c1.last_layer, c1.holds_output) == (16, "decoder.16", "decoder.31", True)
    assert c0.weights_bytes == EMB + 16 * LAYER == W7B // 2 - 4096  # half the model less half the 8 KiB final norm
    assert c1.weights_bytes == 16 * LAYER + 4096 * 2 + EMB
    assert c0.kv_bytes == c1.kv_bytes == 16 * 4096 * KV_TOKEN // 32 == GiB
    assert layer_owners(s) == [0] * 16 + [1] * 16 + [1]
    assert "llama.cpp --split-mode layer --tensor-split 16,17" in s.notes[0]
    assert "VLLM_PP_LAYER_PARTITION=16,16 --pipeline-parallel-size 2" in s.notes[0]


def _card_totals(lay, e, counts):
    """Per-card totals of a split in order, by hand: layers with their caches; activations and
    overhead everywhere; embeddings first; final norm and LM head (a tied embedding's copy) last."""
    kv = lay.kv_per_layer(e)
    loads = [x.weights_bytes + k for x, k in zip(lay.layers, kv, strict=True)]
    out, i = [], 0
    for c, k in enumerate(counts):
        t = sum(loads[i : i + k]) + e.activations_bytes + e.overhead_bytes
        t += lay.embeddings_bytes if c == 0 else 0
        t += lay.output_bytes + lay.tied_bytes if c == len(counts) - 1 else 0
        out.append(t)
        i += k
    return out


def _splits(n, cards):
    if cards == 1:
        yield (n,)
        return
    for k in range(n + 1):
        for rest in _splits(n - k, cards - 1):
            yield (k, *rest)


@pytest.mark.parametrize(
    ("model", "gpus"),
    [
        ("llama-2-13b", ["rtx3090", "rtx4060-ti-16gb"]),
        ("llama-2-13b", ["rtx3060", "rtx4060-ti-16gb"]),
        ("llama-3.1-8b", ["rtx3060", "rtx4060", "rtx3060"]),
        ("llama-3.2-1b", ["rtx2060", "rtx2060"]),
        ("llama-2-70b", ["a100-80gb", "rtx4090", "rtx3090"]),
    ],
)
def test_layer_split_is_the_most_even_split_in_order(catalog, model, gpus):
    # brute force over every split in order: ours fits exactly when one does, and its fullest card
    # (as a share of its memory) is the least full possible
    spec = catalog.resolve("model", model)
    r = resolve(spec, Request())
    devices = [device(catalog.resolve("gpu", g)) for g in gpus]
    s = layer_split(r, 4096, 1, 1, devices)
    lay, e = layout(r), estimate(spec, context=4096)
    vram = [d.vram_bytes for d in devices]
    share = lambda totals: max(t / v for t, v in zip(totals, vram, strict=True))  # noqa: E731
    every = [_card_totals(lay, e, counts) for counts in _splits(len(lay.layers), len(devices))]
    assert [c.total_bytes for c in s.cards] == _card_totals(lay, e, [c.layers for c in s.cards])
    assert s.fits == any(all(t <= v for t, v in zip(totals, vram, strict=True)) for totals in every)
    assert share([c.total_bytes for c in s.cards]) == pytest.approx(min(share(t) for t in every), rel=1e-9)


@pytest.mark.parametrize(
    ("model", "cards"),
    [
        ("llama-2-70b", 4),
        ("llama-3.2-1b", 2),
        ("llava-1.5-13b", 3),
        ("whisper-large-v3", 2),
        ("t5-11b", 2),
        ("llama-3.2-90b-vision", 5),
        ("flan-t5-xxl", 3),
    ],
)
def test_layer_split_sums_back_to_the_whole(catalog, model, cards):
    spec = catalog.resolve("model", model)
    r = resolve(spec, Request())
    e = estimate(spec)
    s = layer_split(r, e.context_tokens, 1, 1, [RTX3090] * cards)
    lay = layout(r)
    assert sum(c.layers for c in s.cards) == len(lay.layers)
    assert sum(c.kv_bytes for c in s.cards) == e.kv_bytes
    # the cards' weights are the model's, plus a copy of a tied embedding on the last card
    assert sum(c.weights_bytes for c in s.cards) == e.weights_bytes + s.duplicated_bytes
    assert s.duplicated_bytes == lay.tied_bytes
    assert [c.holds_output for c in s.cards] == [False] * (cards - 1) + [True]
    assert layer_owners(s) == sorted(layer_owners(s))  # runs in order
    assert s.max_context_tokens == 0 or all(
        c.fits for c in layer_split(r, s.max_context_tokens, 1, 1, [RTX3090] * cards).cards
    )


def test_layer_split_tied_embedding_copy(catalog):
    # Llama 3.2 1B ties its LM head to the embedding (128,256 x 2,048 x bf16): both ends need it.
    s = layer_split(resolve(catalog.resolve("model", "llama-3.2-1b"), Request()), 4096, 1, 1, [RTX3090] * 2)
    assert s.duplicated_bytes == 128256 * 2048 * 2


def test_split_chooses_by_cards():
    r = r7b()
    assert split(r, 4096, 1, 1, [RTX3090] * 2).kind == "tensor"
    assert split(r, 4096, 1, 1, [RTX3090, Device("b", "b", 16 * GiB)]).kind == "layer"
    assert split(r, 4096, 1, 1, [RTX3090] * 2, "layer").kind == "layer"
    with pytest.raises(UsageError, match="at least two cards"):
        split(r, 4096, 1, 1, [RTX3090])


# ---- partial offload ---------------------------------------------------------------------------
def test_offload_llama_2_70b_on_24_gib_by_hand(catalog):
    spec = catalog.resolve("model", "llama-2-70b")
    r = resolve(spec, Request())
    e = estimate(spec, context=4096)
    # one layer in fp16: q, o (8192 x 8192), k, v (1024 x 8192), gate, up, down (28672 x 8192), 2 norms
    layer = (2 * 8192 * 8192 + 2 * 1024 * 8192 + 3 * 28672 * 8192 + 2 * 8192) * 2
    layer_kv = 2 * 1024 * 4096 * 2  # K and V x 8 heads x 128 x 4,096 positions x 2 B
    fixed = e.activations_bytes + e.overhead_bytes  # always on the GPU
    o = offload(r, 4096, 1, 1, 24 * GiB)
    assert set(o.layer_weights_bytes) == {layer} and set(o.layer_kv_bytes) == {layer_kv}
    k = o.gpu_layers
    assert k == (24 * GiB - fixed) // (layer + layer_kv) == 14
    assert o.gpu_total_bytes == fixed + k * (layer + layer_kv) <= 24 * GiB  # k layers fit ...
    assert fixed + (k + 1) * (layer + layer_kv) > 24 * GiB  # ... and one more does not
    assert o.next_bytes == layer + layer_kv and o.n_gpu_layers == 14 and not o.output_on_gpu
    # the rest lives in system memory: token embeddings, 66 layers with their caches, the output layer
    emb = 32000 * 8192 * 2
    assert o.system_weights_bytes == emb + 66 * layer + (8192 * 2 + emb)
    assert o.system_kv_bytes == 66 * layer_kv
    assert o.system_bytes + o.gpu_weights_bytes + o.gpu_kv_bytes == e.weights_bytes + e.kv_bytes


@pytest.mark.parametrize("dtype", ["q4_k_m", "q3_k_m"])
def test_offload_with_uneven_layers(catalog, dtype):
    # k-quant mixes give some layers more bits: the GPU takes the last layers while they fit
    spec = catalog.resolve("model", "llama-3-70b")
    r = resolve(spec, Request(dtype=dtype))
    vram = 16 * GiB
    o = offload(r, 4096, 1, 1, vram)
    e = estimate(spec, context=4096, dtype=dtype)
    n, k = o.layers, o.gpu_layers
    assert len(set(o.layer_weights_bytes)) > 1

    def on_gpu(j: int) -> int:
        return (
            e.activations_bytes
            + e.overhead_bytes
            + sum(o.layer_weights_bytes[n - j :])
            + sum(o.layer_kv_bytes[n - j :])
        )

    assert 0 < k < n and on_gpu(k) == o.gpu_total_bytes <= vram < on_gpu(k + 1)


def test_offload_everything_but_the_embeddings_matches_llama_cpp():
    # llama.cpp -ngl 999 on a V100 (tests/engines/data/measured.yaml, b2197): CUDA0 holds every
    # layer and the output layer, the CPU buffer the token embeddings (as tests/unit/test_weights.py).
    root = Path(__file__).resolve().parents[1] / "engines" / "data" / "measured.yaml"
    measured = {m["id"]: m for m in yaml.safe_load(root.read_text())["entries"]}
    for dtype, quant in (("q8_0", "q8_0"), ("q4_0", "q4_0"), ("q4_k_m", "q4_k")):
        spec = llama(max_position_embeddings=2048)
        r = resolve(spec, Request(dtype=dtype))
        o = offload(r, 512, 1, 1, 80 * GiB)
        comps = {c.name: c.bytes for c in weight_components(spec, weight_dtype(dtype))}
        assert o.output_on_gpu and o.n_gpu_layers == 33
        assert o.gpu_weights_bytes == comps["decoder"] + comps["lm_head"]
        assert o.system_weights_bytes == comps["embeddings"] and o.system_kv_bytes == 0
        m = measured[f"llamacpp-ci-v100-openllama7bv2-{quant}-ctx512"]
        assert abs(o.gpu_weights_bytes / MiB - m["weights_mib"]) < 0.05
        assert abs(o.system_weights_bytes / MiB - m["host"]["weights_cpu_buffer_mib"]) < 0.01
        assert o.gpu_kv_bytes / MiB == m["kv_self_mib"]


def test_offload_when_nothing_fits():
    o = offload(r7b(), 4096, 64, 1, 8 * GiB)  # 64 sequences: activations alone exceed 8 GiB
    assert not o.gpu_fits and o.gpu_layers == 0 and o.n_gpu_layers == 0


# ---- decode speed ------------------------------------------------------------------------------
def test_speed_llama_2_7b_on_a_3090_by_hand():
    # per token: every weight but the input embedding table (one row is looked up) + the 2 GiB cache
    r = r7b()
    e = estimate_resolved(r, 4096, 1, 1)
    sp = decode_speed(layout(r), e, 936_200_000_000)
    read = (W7B - EMB) + 2 * GiB
    assert (sp.weights_read_bytes, sp.kv_read_bytes) == (W7B - EMB, 2 * GiB) and read == 15_362_170_880
    assert sp.tokens_per_s == pytest.approx(936.2e9 / read) == pytest.approx(60.94, abs=0.01)
    assert sp.formula == "tokens/s <= 1 / (15.36 GB / 936.2 GB/s) = 60.9 per sequence (GB = 10^9 bytes)"
    e4 = estimate_resolved(r, 4096, 4, 1)
    sp4 = decode_speed(layout(r), e4, 936_200_000_000)
    assert sp4.tokens_per_s_batch == pytest.approx(4 * 936.2e9 / (W7B - EMB + 4 * 2 * GiB))


def test_speed_skips_what_decoding_does_not_read(catalog):
    # Whisper: the encoder ran once; its decoder reads its layers, final norm and the tied embedding
    # as proj_out; the learned positions are looked up (one row)
    spec = catalog.resolve("model", "whisper-large-v3")
    r = resolve(spec, Request())
    e = estimate_resolved(r, 448, 1, 1)
    comps = {c.name: c.bytes for c in e.components}
    sp = decode_speed(layout(r), e, 10**12)
    assert sp.weights_read_bytes == comps["decoder"] - 448 * 1280 * 2 + comps["embeddings"]
    assert sp.kv_read_bytes == e.kv_self_bytes + e.kv_cross_bytes


def test_offload_speed_adds_the_two_memories(catalog):
    spec = catalog.resolve("model", "llama-2-70b")
    r = resolve(spec, Request())
    e = estimate_resolved(r, 4096, 1, 1)
    o = offload(r, 4096, 1, 1, 24 * GiB)
    lay = layout(r)
    sp = offload_speed(lay, e, o, 936_200_000_000)
    per = o.layer_weights_bytes[0] + o.layer_kv_bytes[0]
    lm_head = 32000 * 8192 * 2 + 8192 * 2  # output layer, left in system memory
    gpu, system = 14 * per, 66 * per + lm_head
    assert [(t.where, t.bytes) for t in sp.terms] == [("gpu", gpu), ("system memory", system)]
    assert sp.seconds_per_token == pytest.approx(gpu / 936.2e9 + system / 89.6e9)
    assert SYSTEM_BANDWIDTH_BYTES_S == 2 * 8 * 5600 * 10**6  # 2 channels x 8 bytes x 5600 MT/s
    slow = offload_speed(lay, e, o, 936_200_000_000, 50 * 10**9)
    assert slow.seconds_per_token == pytest.approx(gpu / 936.2e9 + system / 50e9)


def test_split_speed():
    r = r7b()
    e = estimate_resolved(r, 4096, 1, 1)
    lay = layout(r)
    read = W7B - EMB + 2 * GiB
    tp = split_speed(lay, e, tensor_split(r, 4096, 1, 1, [RTX3090] * 2), [RTX3090] * 2)
    assert tp.tokens_per_s == pytest.approx(936.2e9 / (read / 2))  # both halves read at once
    pp = split_speed(lay, e, layer_split(r, 4096, 1, 1, [RTX3090] * 2), [RTX3090] * 2)
    assert sum(t.bytes for t in pp.terms) == read  # one card after the other: no faster than one card
    assert pp.tokens_per_s == pytest.approx(936.2e9 / read)


def test_speed_reads_only_the_sliding_window(catalog):
    # Mistral 7B v0.1: the prefill peak holds all 32,768 positions, a decoding step reads the 4,096
    # of the window: 2 x 32 layers x 8 KV heads x 128 x 4,096 x 2 B = 512 MiB
    spec = catalog.resolve("model", "mistral-7b")
    r = resolve(spec, Request())
    e = estimate_resolved(r, 32768, 1, 1)
    sp = decode_speed(layout(r), e, 10**12)
    assert e.kv_self_bytes == 8 * sp.kv_read_bytes and sp.kv_read_bytes == 2 * 32 * 8 * 128 * 4096 * 2


def test_gemma_3_27b_layer_split_puts_each_layers_own_cache_on_its_card(catalog):
    """Gemma 3 27B over two cards at 32,768 tokens: 52 of its 62 layers slide over 1,024 positions.
    At the prefill peak every layer holds the whole prompt (transformers, DOMAIN.md), and a decoding
    step reads a sliding layer's window only, so each card's share is the sum of its own layers'
    costs, computed here from the geometry's per-layer fields (kv_heads x (key_dim + value_dim) x
    positions x 2 B bf16), not spread evenly over full and sliding layers."""
    from willitrun import archs

    spec = catalog.resolve("model", "gemma-3-27b")
    cards = [device(catalog.resolve("gpu", "rtx-6000-ada")), device(catalog.resolve("gpu", "h100-sxm"))]
    r, context = resolve(spec, Request()), 32768
    s = layer_split(r, context, 1, 1, cards)
    g = archs.geometry(spec)
    lay = layout(r)
    assert [u.name for u in lay.layers] == [f"decoder.{i}" for i in range(g.decoder_layers)]
    sliding = [i for i, k in enumerate(g.self_kv) if k is not None and k.kind == "sliding"]
    assert len(sliding) == 52 and {g.self_kv[i].window for i in sliding} == {1024}

    def held(i: int, read: bool) -> int:
        k = g.self_kv[i]
        positions = min(context, k.window) if read and k.kind == "sliding" else context
        return k.kv_heads * (k.key_dim + k.value_dim) * positions * 2

    owners = layer_owners(s)[:-1]
    peak = [sum(held(i, False) for i, c in enumerate(owners) if c == card) for card in range(2)]
    read = [sum(held(i, True) for i, c in enumerate(owners) if c == card) for card in range(2)]
    assert [c.kv_bytes for c in s.cards] == peak
    # the 48 GB card holds fewer layers, and a smaller share of the 10 full ones (every 6th layer) than
    # of all 62: an even spread per layer would give it a read share of its layer count's part
    assert s.cards[0].layers * sum(read) != read[0] * g.decoder_layers
    # decode-speed bound: each card's term is its layers' weights, its layers' reads, and the output
    e = estimate_resolved(r, context, 1, 1)
    terms = split_speed(lay, e, s, cards).terms
    for card, term in enumerate(terms):
        mine = [i for i, c in enumerate(owners) if c == card]
        weights = sum(lay.layers[i].decode_bytes for i in mine) + (lay.output_decode_bytes if card == 1 else 0)
        assert term.bytes == weights + read[card], card
    assert sum(read) < sum(peak)


def test_hybrid_state_sits_on_its_mamba_layers_and_kv_on_its_attention_layers(catalog):
    """Jamba Mini 1.5: one attention layer in eight. Each layer's cache, from the geometry: an
    attention layer kv_heads x (key_dim + value_dim) x context x 2 B, a Mamba layer its conv + SSM
    state: conv elements x 2 B (bf16) + SSM elements x 4 B (transformers keeps the SSM state in float32:
    reference.json state_dtypes_bf16), whatever the context; a layer split and a tensor split hold them
    all (the state was left off the cards before)."""
    from willitrun import archs

    spec = catalog.resolve("model", "jamba-mini-1.5")
    r, context = resolve(spec, Request()), 8192
    g = archs.geometry(spec)
    expected = []
    for k, (conv, ssm) in zip(g.self_kv, g.ssm_state, strict=True):
        expected.append(k.kv_heads * (k.key_dim + k.value_dim) * context * 2 if k is not None else conv * 2 + ssm * 4)
    e = estimate_resolved(r, context, 1, 1)
    assert layout(r).kv_per_layer(e) == tuple(expected)
    assert sum(1 for k in g.self_kv if k is not None) * 8 == g.decoder_layers
    h100 = device(catalog.resolve("gpu", "h100-sxm"))
    for s in (layer_split(r, context, 1, 1, [h100, RTX3090]), tensor_split(r, context, 1, 1, [h100, h100])):
        assert sum(c.kv_bytes for c in s.cards) == s.kv_bytes == sum(expected) == e.kv_bytes + e.state_bytes, s.kind
