"""Record what Hugging Face transformers says about every real config.json in tests/importers/data/real_configs.

For each file (a verbatim config.json of a published checkpoint; where each was read is in that directory's
SOURCES file) this writes to tests/reference/real_configs.json:

- `model_class` and `parameters`: the class the checkpoint names (`architectures[0]`, when transformers ships it
  for this config; else the first auto class that builds it: causal LM, image-text-to-text, seq2seq, speech
  seq2seq, base model) built on the meta device from the config transformers reads, and
  sum(p.numel() for p in model.parameters()) (a tied weight counts once);
- `caches`: the config block willitrun's transformers oracle writes for it (importers/oracle.py: a short forward
  pass on the meta device, every cache layer's kind and widths read from the returned cache), from which the
  test builds a `generic` spec and compares its KV cache and recurrent state bytes with the family's;
- `refused`: why transformers itself cannot build it without the model's own code (a model_type it does not
  ship), in which case willitrun must refuse it in one line too.

A model_type that only names the model's own copy of a class transformers ships (willitrun.importers.REMOTE_COPIES:
Kimi K2's kimi_k2 is DeepSeek-V3's DeepseekV3Config, its checkpoint a DeepseekV3ForCausalLM) is built as that class.

`auto_map` is dropped before building: transformers' own class for the model_type is built, and no code from a
model repository ever runs (the configs are read, never executed). Nothing is typed in by hand.

    python tests/reference/build_real_configs.py            # rewrite real_configs.json (~1 min, 2 CPU cores)
    python tests/reference/build_real_configs.py --only glm-4.5-air
    python tests/reference/build_real_configs.py --check    # CI: exit 1 if real_configs.json is stale

Exit codes: 0 ok; 1 `--check` found a difference; 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CONFIGS = ROOT / "tests" / "importers" / "data" / "real_configs"
OUTPUT = HERE / "real_configs.json"
sys.path.insert(0, str(ROOT / "src"))

AUTO_CLASSES = (
    "AutoModelForCausalLM",
    "AutoModelForImageTextToText",
    "AutoModelForSeq2SeqLM",
    "AutoModelForSpeechSeq2Seq",
    "AutoModel",
)


def _build(transformers: Any, torch: Any, cfg: dict[str, Any]) -> Any:
    """The model the checkpoint names, on the meta device, from the config transformers reads (no remote code)."""
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "config.json").write_text(json.dumps(cfg))
        config = transformers.AutoConfig.from_pretrained(d, trust_remote_code=False)
    named = (cfg.get("architectures") or [None])[0]
    candidates = []
    cls = getattr(transformers, named, None) if isinstance(named, str) else None
    if cls is not None and isinstance(config, getattr(cls, "config_class", type(None))):
        candidates.append(cls)
    candidates += [getattr(transformers, a) for a in AUTO_CLASSES]
    last: Exception | None = None
    for c in candidates:
        try:
            with torch.device("meta"):
                return c.from_config(config) if c.__name__.startswith("Auto") else c(config)
        except ValueError as exc:  # "Unrecognized configuration class ... for this kind of AutoModel"
            last = exc
    raise RuntimeError(f"no class builds it: {last}")


def record(path: Path) -> dict[str, Any]:
    import torch
    import transformers
    from transformers import CONFIG_MAPPING

    from willitrun.errors import SpecError, UsageError
    from willitrun.importers import REMOTE_COPIES, oracle

    cfg = json.loads(path.read_text())
    copy = REMOTE_COPIES.get(cfg.get("model_type"))
    if copy is not None and cfg.get("architectures") == [copy[0]]:  # Kimi K2: DeepSeek-V3's own class
        cfg["model_type"] = copy[2]
    cfg.pop("auto_map", None)
    if cfg.get("model_type") not in CONFIG_MAPPING:
        return {"refused": f"transformers {transformers.__version__} ships no model_type {cfg.get('model_type')!r}"}
    model = _build(transformers, torch, cfg)
    out: dict[str, Any] = {
        "model_class": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    try:
        out["caches"] = oracle.generic_config(cfg, path.name)
    except (SpecError, UsageError) as exc:  # e.g. Voxtral: no causal or image-text-to-text LM to run
        out["caches_not_measured"] = str(exc).split(": ", 1)[-1]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with real_configs.json instead of writing it")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these configs (file names without .json)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    paths = sorted(CONFIGS.glob("*.json"))
    if args.only:
        missing = set(args.only) - {p.stem for p in paths}
        if missing:
            sys.stderr.write(f"error: no such config: {', '.join(sorted(missing))}\n")
            return 2
        paths = [p for p in paths if p.stem in args.only]
    fresh = {p.stem: record(p) for p in paths}
    old = json.loads(OUTPUT.read_text()) if OUTPUT.exists() else {"models": {}}
    models = {**old["models"], **fresh} if args.only else fresh
    doc = {
        "generator": "tests/reference/build_real_configs.py",
        "versions": {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__},
        "models": dict(sorted(models.items())),
    }
    if args.check:
        stale = sorted(k for k in models if old["models"].get(k) != models[k])
        if stale or old.get("versions") != doc["versions"]:
            sys.stderr.write(f"{OUTPUT.name} is stale: {', '.join(stale) or 'versions'}\n")
            return 1
        return 0
    OUTPUT.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    sys.stdout.write(f"wrote {OUTPUT} ({len(fresh)} configs)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
