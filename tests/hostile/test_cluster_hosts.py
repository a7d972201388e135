"""Injected (issue 17 section 1): a `--cluster` host named `$(rm -rf ~)` was printed verbatim into the
llama.cpp RPC and Ray commands, and a host listed twice counted its GPUs twice.

Now: hosts follow host name / IP grammar (cluster.check_host), every printed command is shell words
joined with shlex.join (so `shlex.split` gives back exactly the words meant), and a host listed twice
is refused.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from willitrun import load_catalog
from willitrun.cluster import check_host, cluster_from_dict, plan_llamacpp_rpc, plan_vllm, uniform_cluster
from willitrun.errors import UsageError
from willitrun.memory import Request
from willitrun.placement import device

ROOT = Path(__file__).resolve().parents[2]
catalog = load_catalog()
H100 = device(catalog.resolve("gpu", "h100-sxm"))
MODEL = catalog.resolve("model", "llama-3.1-8b")


def lookup(name: str):
    return device(catalog.resolve("gpu", name))


def nodes(*hosts: str, gpus: int = 1) -> dict:
    return {"nodes": [{"host": h, "gpu": "h100-sxm", "gpus": gpus} for h in hosts]}


HOSTILE = [
    "$(rm -rf ~)",
    "`id`",
    "a;b",
    "a b",
    "a|b",
    "a&&b",
    "a\nb",
    "-oProxyCommand=x",
    "--head",
    "a'b",
    'a"b',
    "a$b",
    "*",
    "~",
    "",
    ".",
    "a..b",
    "-a",
    "a-",
    "a_b",
    "a" * 64,
    ".".join(["a" * 63] * 4) + ".ab",
    "1.2.3.999",
    "1.2.3",
    "::g",
    "[::1]",
    "10.0.0.1:22",
    "ex\u00e4mple.com",
    "a/b",
    "<node0-ip>",
]


@pytest.mark.parametrize("host", HOSTILE, ids=repr)
def test_a_host_that_is_not_a_name_or_address_is_refused(host):
    with pytest.raises(UsageError) as info:
        cluster_from_dict(nodes(host), lookup, "c.yaml")
    message = str(info.value)
    assert message.startswith("c.yaml: nodes.0.host: ")  # an empty or over-long one: the file's own length rule
    assert "is not a host name or an IP address" in message or len(host) not in range(1, 254)
    assert "\n" not in message and len(message) < 250


@pytest.mark.parametrize(
    ("host", "kept"),
    [
        ("node-1", "node-1"),
        ("Node-1.Example.COM", "node-1.example.com"),
        ("10.0.0.1", "10.0.0.1"),
        ("a" * 63, "a" * 63),
        ("fe80::0001", "fe80::1"),
        ("gpu7.cluster.local", "gpu7.cluster.local"),
        ("1a.b2", "1a.b2"),
    ],
)
def test_host_names_and_addresses_are_accepted(host, kept):
    assert check_host(host) == kept


@pytest.mark.parametrize(
    "pair", [("node1", "node1"), ("node1", "NODE1"), ("10.0.0.1", "10.0.0.1"), ("fe80::1", "fe80:0::1")]
)
def test_the_same_host_twice_is_refused(pair):
    with pytest.raises(UsageError, match="is listed twice"):
        cluster_from_dict(nodes(*pair, gpus=8), lookup)
    with pytest.raises(UsageError, match="is listed twice"):
        uniform_cluster(H100, 16, 8, hosts=list(pair))


def test_ipv6_hosts_are_bracketed_for_ray_and_refused_for_llamacpp_rpc():
    c = cluster_from_dict(nodes("fe80::1", "fe80::2", gpus=1), lookup)
    plan = plan_vllm(catalog.resolve("model", "llama-3.1-70b"), Request(context=4096), c)
    assert "ray start '--address=[fe80::1]:6379'" in [cmd.command for cmd in plan.commands]
    with pytest.raises(UsageError, match="IPv6"):
        plan_llamacpp_rpc(MODEL, Request(dtype="q4_k_m"), c)


def _words(plan) -> list[list[str]]:
    return [shlex.split(c.command) for c in plan.commands]


@settings(max_examples=60, deadline=None)
@given(path=st.text(min_size=1, max_size=40))
def test_every_printed_command_splits_back_into_the_words_meant(path):
    """A model path with shell syntax in it stays one word in every command (vLLM and llama.cpp)."""
    c = uniform_cluster(H100, 2, 1, hosts=["node0", "node1"])
    vllm = plan_vllm(MODEL, Request(context=4096), c, model_path=path, tp=1, pp=2)
    serve = _words(vllm)[-1]
    assert serve[:3] == ["vllm", "serve", path]
    rpc = plan_llamacpp_rpc(MODEL, Request(dtype="q4_k_m", context=4096), c, model_path=path)
    main = _words(rpc)[-1]
    assert main[:3] == ["llama-server", "-m", path] and main[main.index("--rpc") + 1] == "node1:50052"


def test_the_cluster_file_from_the_issue_through_the_command(tmp_path):
    """The report as made: `$(rm -rf ~)` as a host of a --cluster file, through the real entry point."""
    f = tmp_path / "c.yaml"
    f.write_text(
        "nodes:\n  - {host: 10.0.0.1, gpu: h100-sxm, gpus: 1}\n  - {host: '$(rm -rf ~)', gpu: h100-sxm, gpus: 1}\n"
    )
    for engine in ("vllm", "llama.cpp"):
        r = subprocess.run(
            [sys.executable, "-m", "willitrun", "llama-3.1-8b", "--cluster", str(f), "--engine", engine],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={"PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1", "PATH": "/usr/bin:/bin", "WILLITRUN_NO_CACHE": "1"},
        )
        assert r.returncode == 2 and r.stdout == "", (r.returncode, r.stdout)
        assert r.stderr == f"error: {f}: nodes.1.host: host '$(rm -rf ~)' is not a host name or an IP address\n"
    f.write_text("nodes:\n  - {host: gpu1, gpu: h100-sxm, gpus: 8}\n  - {host: gpu1, gpu: h100-sxm, gpus: 8}\n")
    r = subprocess.run(
        [sys.executable, "-m", "willitrun", "llama-3.1-405b", "--cluster", str(f)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1", "PATH": "/usr/bin:/bin", "WILLITRUN_NO_CACHE": "1"},
    )
    assert r.returncode == 2 and "node gpu1 is listed twice" in r.stderr, r.stderr
