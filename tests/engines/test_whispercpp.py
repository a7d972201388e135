"""whisper.cpp profile: how per-state buffers scale (versions are in test_whispercpp_versions.py)."""


def test_states_multiply_buffers_not_their_count(catalog):
    """whisper.cpp gives every state (-p processors, or sequences) the same buffers: one line each,
    times the count, so a large --batch costs arithmetic, not a buffer per state."""
    from willitrun.engines import engine_estimate
    from willitrun.memory import Request

    spec = catalog.resolve("model", "whisper-base")
    one = engine_estimate(spec, Request(), "whisper.cpp")
    many = engine_estimate(spec, Request(batch=1 << 20), "whisper.cpp")
    assert len(many.buffers) == len(one.buffers)
    per_state = {b.name: b.bytes for b in one.buffers}
    for b in many.buffers:
        if "states]" in b.name:
            assert b.bytes == per_state[b.name.split(" [x ")[0]] << 20
