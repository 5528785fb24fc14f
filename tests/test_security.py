"""Security: safetensors only, trust_remote_code only when asked, a Hugging Face token never
written or said, no listening socket, nothing written outside the run folder, the cache and
the paths the user named.

One real session (train, eval, two error paths) runs once in subprocesses with HOME, the XDG
folders, the cache and the temp folder pointed into a scratch tree; the tests read what it did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from demo_slice import demo_slice

from mlxtui.core import models

TOKEN = "hf_PLANTEDsecret0123456789abcdefXYZ"


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of every file under root."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            try:
                st = p.stat()
            except OSError:
                continue
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def _run_watched(argv: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run `mlxtui argv`, sampling its sockets (and its children's) every 20 ms."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlxtui", *argv], cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    listening: set[Any] = set()
    connections: set[Any] = set()
    samples = 0
    while proc.poll() is None:
        try:
            procs = [psutil.Process(proc.pid)]
            procs += procs[0].children(recursive=True)
            for p in procs:
                for c in p.net_connections(kind="inet"):
                    if c.status == psutil.CONN_LISTEN:
                        listening.add(c.laddr)
                    elif c.raddr:
                        connections.add(c.raddr)
            samples += 1
        except psutil.Error:
            pass
        time.sleep(0.02)
    out, err = proc.communicate()
    return {"code": proc.returncode, "out": out, "err": err, "listening": listening,
            "connections": connections, "samples": samples}  # fmt: skip


@pytest.fixture(scope="module")
def session(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:

    root = tmp_path_factory.mktemp("sec")
    home, cwd, cache = root / "home", root / "work", root / "mlxtui-cache"
    xdg = {name: home / sub for name, sub in (("XDG_CACHE_HOME", ".cache"), ("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share"), ("XDG_STATE_HOME", ".local/state"))}  # fmt: skip
    for d in (home, cwd, cache, *xdg.values()):
        d.mkdir(parents=True, exist_ok=True)
    demo_slice(cwd / "data", train=16, valid=4, test=4)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "HF_", "MLXTUI_"))}
    env.update({k: str(v) for k, v in xdg.items()})
    # TMPDIR stays the system's: MLX keeps its CPU kernel cache there (tmp/mlx/<version>/cpu/*.cpp,
    # compiled on first use; a fresh one costs minutes), which is MLX's, not a file of the user's
    env.update(
        HOME=str(home), MLXTUI_CACHE_DIR=str(cache), HF_TOKEN=TOKEN, HUGGING_FACE_HUB_TOKEN=TOKEN
    )
    model_before = _tree(tiny_model_dir)
    before = {"root": _tree(root)}
    runs = [
        _run_watched(
            [
                "train",
                "--model",
                str(tiny_model_dir),
                "--data",
                "data",
                "--iters",
                "3",
                "--save-every",
                "1",
                "--steps-per-eval",
                "2",
                "--val-batches",
                "1",
                "--batch-size",
                "2",
                "--num-layers",
                "2",
                "--adapter-path",
                "adapters",
                "--runs-dir",
                "runs",
                "--memory-guard",
                "off",
            ],
            env,
            cwd,
        ),  # fmt: skip
        _run_watched(
            [
                "eval",
                "--model",
                str(tiny_model_dir),
                "--adapter-path",
                "adapters",
                "--data",
                "data",
                "--n",
                "1",
                "--max-tokens",
                "2",
                "--test-batches",
                "1",
                "--batch-size",
                "2",
            ],
            env,
            cwd,
        ),  # fmt: skip
        # error paths: a model that is not there; a hub upload given the token as a flag
        _run_watched(
            ["train", "--model", str(root / "no-such-model"), "--data", "data", "--iters", "1"],
            env,
            cwd,
        ),
        _run_watched(
            ["export", "hub", str(root / "no-such-folder"), "owner/name", "--token", TOKEN],
            env,
            cwd,
        ),
    ]
    return {
        "root": root, "cwd": cwd, "cache": cache, "home": home, "runs": runs, "before": before["root"],
        "after": _tree(root), "model": tiny_model_dir, "model_before": model_before,
    }  # fmt: skip


def test_the_session_ran(session: dict[str, Any]) -> None:
    train, evaluation, bad_model, bad_upload = session["runs"]
    assert train["code"] == 0, train["err"]
    assert evaluation["code"] == 0, evaluation["err"]
    assert bad_model["code"] != 0 and "no-such-model" in bad_model["err"]
    assert bad_upload["code"] != 0 and "no-such-folder" in bad_upload["err"]
    assert all("Traceback" not in r["err"] for r in session["runs"])


def test_the_token_is_never_written_or_said(session: dict[str, Any]) -> None:
    needles = (TOKEN.encode(), TOKEN[3:].encode())
    written = [p for p in session["root"].rglob("*") if p.is_file()]
    assert len(written) > 10  # the run folder, the adapter, the data: there is something to search
    leaks = [str(p) for p in written if any(n in p.read_bytes() for n in needles)]
    assert leaks == []
    for r in session["runs"]:
        assert TOKEN not in r["out"] and TOKEN not in r["err"]


def test_no_listening_socket(session: dict[str, Any]) -> None:
    for r in session["runs"]:
        assert r["samples"] > 0
        assert r["listening"] == set(), r["listening"]
    # the model is local: nothing was contacted either
    assert set().union(*(r["connections"] for r in session["runs"][:3])) == set()


def test_nothing_written_outside_the_run_the_cache_and_the_named_paths(
    session: dict[str, Any],
) -> None:
    before, after = session["before"], session["after"]
    new_or_changed = sorted(p for p, st in after.items() if before.get(p) != st)
    allowed = ("work/runs/", "work/adapters/", "mlxtui-cache/")
    outside = [p for p in new_or_changed if not p.startswith(allowed)]
    assert outside == [], outside
    assert any(p.startswith("work/runs/") for p in new_or_changed)
    assert any(p.startswith("work/adapters/") for p in new_or_changed)
    assert _tree(session["model"]) == session["model_before"]  # the model is only read


def test_the_saved_config_and_adapter_config_hold_no_token_setting(session: dict[str, Any]) -> None:
    run = next((session["cwd"] / "runs").iterdir())
    config = (run / "config.yaml").read_text()
    assert "token" not in config.lower()
    adapter_config = json.loads((session["cwd"] / "adapters" / "adapter_config.json").read_text())
    assert not any("token" in k.lower() for k in adapter_config)


# ---------------------------------------------------------------- trust_remote_code


class _Spy:
    """Records the keyword arguments AutoTokenizer.from_pretrained is called with, and calls it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import transformers

        self.calls: list[dict[str, Any]] = []
        real = transformers.AutoTokenizer.from_pretrained

        def spy(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(dict(kwargs))
            return real(*args, **kwargs)

        monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", spy)


def test_trust_remote_code_reaches_the_tokenizer_loader_only_when_set(
    tiny_model_dir: Path, monkeypatch
) -> None:
    spy = _Spy(monkeypatch)
    models.load_model(str(tiny_model_dir))
    models.load_tokenizer(str(tiny_model_dir))
    assert len(spy.calls) == 2 and all(c.get("trust_remote_code") is False for c in spy.calls)
    spy.calls.clear()
    models.load_model(str(tiny_model_dir), trust_remote_code=True)
    models.load_tokenizer(str(tiny_model_dir), trust_remote_code=True)
    assert len(spy.calls) == 2 and all(c.get("trust_remote_code") is True for c in spy.calls)


def test_the_trust_remote_code_flag_reaches_the_loader_through_training(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    from mlxtui.cli.main import build_parser
    from mlxtui.cli.train import config_from_args
    from mlxtui.core.engine import Engine
    from mlxtui.core.jobs import Train
    from mlxtui.demo_data import demo_data_dir

    common = ["train", "--model", str(tiny_model_dir), "--data", str(demo_data_dir()), "--iters", "1",
              "--num-layers", "1", "--val-batches", "1", "--runs-dir", str(tmp_path / "runs"),
              "--adapter-path", str(tmp_path / "a"), "--memory-guard", "off", "--sample-prompts", "0"]  # fmt: skip
    off = config_from_args(build_parser().parse_args(common))
    on = config_from_args(build_parser().parse_args([*common, "--trust-remote-code"]))
    assert off.trust_remote_code is False and on.trust_remote_code is True
    spy = _Spy(monkeypatch)
    engine = Engine(lambda e: None)
    engine.start()
    try:
        engine.run_sync(Train(on))
        assert spy.calls and spy.calls[-1].get("trust_remote_code") is True
        spy.calls.clear()
        engine.run_sync(Train(off.with_values(adapter_path=str(tmp_path / "b"))))
        assert spy.calls and spy.calls[-1].get("trust_remote_code") is False
    finally:
        engine.stop()
