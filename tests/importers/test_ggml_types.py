"""The bundled ggml type table (willitrun/ggml_types.py) is the `gguf` package's, type by type."""

from __future__ import annotations

import pytest

from willitrun.ggml_types import FILE_TYPES, GGML_TYPES

gguf = pytest.importorskip("gguf")


def test_every_ggml_type_matches_the_gguf_package():
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    package = {int(t): (t.name, *GGML_QUANT_SIZES[t]) for t in GGMLQuantizationType}
    assert package == GGML_TYPES


def test_mxfp4_is_there():
    # ggml.h: GGML_TYPE_MXFP4 = 39, 32 elements in 17 bytes (one E8M0 scale + 16 bytes of 4-bit values)
    assert GGML_TYPES[39] == ("MXFP4", 32, 17)


def test_every_file_type_matches_the_gguf_package():
    assert {int(t): t.name for t in gguf.LlamaFileType} == FILE_TYPES
