from __future__ import annotations

import os
import tempfile

# The suite never writes the user's spec cache (~/.cache/willitrun): one fresh directory per run.
os.environ.setdefault("WILLITRUN_CACHE_DIR", tempfile.mkdtemp(prefix="willitrun-cache-"))
# Offload plans are checked against this machine's memory (detect/host.py): the suite fixes the figure so
# its answers do not depend on the machine running it (tests/answers/test_host_ram.py unsets it).
os.environ.setdefault("WILLITRUN_RAM", "1024GiB")
# The user's config (~/.config/willitrun/config.toml: a default GPU, overheads `explain --save` measured)
# never reaches the suite: an empty config folder per run.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="willitrun-config-")

import pytest

from willitrun import load_catalog
from willitrun.specs import parse_model_spec


@pytest.fixture(scope="session")
def catalog():
    return load_catalog()


def llama(**overrides):
    """A Llama-architecture spec built in the test, Llama-2-7B shapes unless overridden
    (Llama-2-7b-hf config.json: 32 layers, 4096 hidden, 32 heads, 11008 intermediate, 32000 vocab)."""
    config = {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "max_position_embeddings": 4096,
    }
    config.update(overrides)
    return parse_model_spec(
        {
            "id": "test-llama",
            "name": "test",
            "architecture": "llama",
            "dtype": "float16",
            "sources": {"config": "test"},
            "config": config,
        }
    )
