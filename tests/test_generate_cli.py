"""`mlxtui generate`: mlx_lm.generate's flags, the answer streamed on stdout, stats on stderr."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlx_lm import load as mlx_load
from mlx_lm import stream_generate
from test_generation import make_adapter

from mlxtui.cli.main import build_parser
from mlxtui.core.generation import generate_reply, load_adapter_file, render_prompt

PROMPT = "What is the capital of France?"


class _Writes(io.StringIO):
    """stdout that remembers each write, to see the answer arrive in pieces."""

    def __init__(self) -> None:
        super().__init__()
        self.pieces: list[str] = []

    def write(self, s: str) -> int:
        self.pieces.append(s)
        return super().write(s)


def _run(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = ""
) -> tuple[int, _Writes, str]:
    out, err = _Writes(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    args = build_parser().parse_args(["generate", *argv])
    code = args.func(args)
    return code, out, err.getvalue()


@pytest.fixture(scope="module")
def tiny_adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(tiny_model_dir, tmp_path_factory.mktemp("gen") / "adapters")


def test_the_flags_keep_mlx_lm_generate_names_and_defaults() -> None:
    a = build_parser().parse_args(["generate"])
    assert (a.prompt, a.max_tokens, a.temp, a.top_p, a.seed, a.verbose) == (
        "hello",
        100,
        0.0,
        1.0,
        None,
        True,
    )
    a = build_parser().parse_args(
        ["generate", "-p", "hi", "-m", "7", "--temp", "0.5", "--top-p", "0.9", "--seed", "3",
         "--system-prompt", "be brief", "--extra-eos-token", "a", "b", "--verbose", "F"]
    )  # fmt: skip
    assert (a.prompt, a.max_tokens, a.temp, a.top_p, a.seed) == ("hi", 7, 0.5, 0.9, 3)
    assert (a.system_prompt, a.extra_eos_token, a.verbose) == ("be brief", ["a", "b"], False)
    a = build_parser().parse_args(["generate", "--min-p", "0.1", "--top-k", "40", "--ignore-chat-template"])
    assert (a.min_p, a.top_k, a.ignore_chat_template) == (0.1, 40, True)
    assert build_parser().parse_args(["generate"]).min_p == 0.0  # mlx_lm.generate's defaults: off
    assert build_parser().parse_args(["generate"]).top_k == 0


def test_greedy_answer_streams_in_pieces_and_matches_the_library(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tok = mlx_load(str(tiny_model_dir))
    expected = generate_reply(
        model, tok, [{"role": "user", "content": PROMPT}], temperature=0.0, max_tokens=12
    )[0]
    code, out, err = _run(["--model", str(tiny_model_dir), "-p", PROMPT, "-m", "12"], monkeypatch)
    assert code == 0, err
    assert out.getvalue() == expected + "\n"
    answer_pieces = [p for p in out.pieces if p and p != "\n"]
    assert len(answer_pieces) > 1  # written token by token, not once at the end
    assert "Generation: 12 tokens" in err and "tokens-per-sec" in err and "Peak memory:" in err
    assert "Prompt: " in err


def test_adapter_path_loads_the_base_it_names_and_answers_with_the_adapter(
    tiny_model_dir: Path, tiny_adapter: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tok = mlx_load(str(tiny_model_dir))
    load_adapter_file(model, tiny_adapter)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": PROMPT}]
    expected = generate_reply(model, tok, messages, temperature=0.0, max_tokens=10)[0]
    # no --model: the base named in adapter_config.json, as mlx_lm.fuse and mlxtui eval do
    code, out, err = _run(
        ["--adapter-path", str(tiny_adapter), "--system-prompt", "be brief", "-p", PROMPT, "-m", "10",
         "--verbose", "False"],
        monkeypatch,
    )  # fmt: skip
    assert code == 0, err
    assert out.getvalue() == expected + "\n"
    assert "Generation:" not in err  # --verbose False: only the answer


def test_prompt_dash_reads_stdin(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, tok = mlx_load(str(tiny_model_dir))
    expected = generate_reply(
        model, tok, [{"role": "user", "content": "from stdin"}], temperature=0.0, max_tokens=6
    )[0]
    code, out, err = _run(
        ["--model", str(tiny_model_dir), "-p", "-", "-m", "6"], monkeypatch, stdin="from stdin"
    )
    assert code == 0, err
    assert out.getvalue() == expected + "\n"


def test_seed_fixes_a_sampled_answer(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def sampled(seed: int) -> str:
        argv = [
            "--model",
            str(tiny_model_dir),
            "-p",
            PROMPT,
            "-m",
            "16",
            "--temp",
            "1.5",
            "--seed",
            str(seed),
        ]
        code, out, err = _run(argv, monkeypatch)
        assert code == 0, err
        return out.getvalue()

    first = sampled(1)
    assert sampled(1) == first
    assert any(sampled(s) != first for s in (2, 3, 4))


def test_extra_eos_token_ends_the_answer(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tok = mlx_load(str(tiny_model_dir))
    prompt = render_prompt(tok, [{"role": "user", "content": PROMPT}])
    tokens = [r.token for r in stream_generate(model, tok, prompt, max_tokens=12)]
    # the first token of the greedy answer that is new (a tiny model repeats itself)
    i = next(i for i, t in enumerate(tokens) if i > 0 and t not in tokens[:i])
    stop = tok.convert_ids_to_tokens(tokens[i])
    code, out, err = _run(
        ["--model", str(tiny_model_dir), "-p", PROMPT, "-m", "12", "--extra-eos-token", stop],
        monkeypatch,
    )
    assert code == 0, err
    full = generate_reply(
        model, tok, [{"role": "user", "content": PROMPT}], temperature=0.0, max_tokens=12
    )[0]
    answer = out.getvalue().removesuffix("\n")
    # it stopped there: the answer is the first i tokens of the full one
    assert answer.strip() == tok.decode(tokens[:i]).strip()
    assert full.startswith(answer) and len(answer) < len(full)


def test_errors_name_what_and_exit_non_zero(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = _run(["--model", str(tmp_path / "nope"), "-p", "hi"], monkeypatch)
    assert code == 1 and "mlxtui generate: error:" in err and "nope" in err
    code, out, err = _run(
        ["--model", str(tiny_model_dir), "--extra-eos-token", "zzqqzz"], monkeypatch
    )
    assert (
        code == 1 and "--extra-eos-token 'zzqqzz' is not a token" in err and "Traceback" not in err
    )
    assert out.getvalue() == ""
    code, _, err = _run(["--model", "demo", "--max-tokens", "0"], monkeypatch)
    assert code == 2 and "--max-tokens must be at least 1" in err


def test_the_technical_notes_line_as_written(
    tiny_model_dir: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    """`python -m mlx_lm.generate --model M --adapter-path adapters --max-tokens 500 --prompt "…"`,
    with `mlxtui generate` in place of the program and a local model, in a fresh process."""
    import shutil

    shutil.copytree(tiny_adapter, tmp_path / "adapters")
    proc = subprocess.run(
        [sys.executable, "-m", "mlxtui", "generate", "--model", str(tiny_model_dir), "--adapter-path", "adapters",
         "--max-tokens", "500", "--prompt", "Your prompt here"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip()
    assert "Generation:" in proc.stderr and "Peak memory:" in proc.stderr


def _answer(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    code, out, err = _run(argv, monkeypatch)
    assert code == 0, err
    return out.getvalue(), err


@pytest.mark.parametrize("narrowing", [["--top-k", "1"], ["--min-p", "1.0"]])
def test_top_k_and_min_p_narrow_the_sampled_tokens(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, narrowing: list[str]
) -> None:
    """At a wild temperature, top-k 1 (only the likeliest token) and min-p 1 (only tokens as
    likely as the likeliest) both give the greedy answer, whatever the seed; without them the
    same seeds sample other answers."""
    base = ["--model", str(tiny_model_dir), "-p", PROMPT, "-m", "12", "--verbose", "F"]
    greedy, _ = _answer(base, monkeypatch)
    wild = [*base, "--temp", "5"]
    for seed in ("1", "2", "3"):
        assert _answer([*wild, *narrowing, "--seed", seed], monkeypatch)[0] == greedy
    assert any(_answer([*wild, "--seed", s], monkeypatch)[0] != greedy for s in ("1", "2", "3"))


def test_repetition_penalty_acts_as_mlx_lm_s_logits_processor(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Greedy answers: with --repetition-penalty 1.8 the same tokens as mlx-lm's own
    stream_generate with make_logits_processors(1.8, 20) on the same prompt, and other tokens
    than without it (the random tiny model repeats itself greedily); 1 is off."""
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_logits_processors, make_sampler

    base = ["--model", str(tiny_model_dir), "-p", PROMPT, "-m", "24", "--temp", "0", "--verbose", "F"]
    plain, _ = _answer(base, monkeypatch)
    assert _answer([*base, "--repetition-penalty", "1"], monkeypatch)[0] == plain
    penalised, _ = _answer([*base, "--repetition-penalty", "1.8"], monkeypatch)
    assert penalised != plain
    model, tok = mlx_load(str(tiny_model_dir))
    prompt = render_prompt(tok, [{"role": "user", "content": PROMPT}])

    def mlx_lm_answer(context_size: int) -> str:
        processors = make_logits_processors(repetition_penalty=1.8, repetition_context_size=context_size)
        chunks = stream_generate(
            model, tok, prompt, max_tokens=24, sampler=make_sampler(temp=0.0), logits_processors=processors
        )
        return "".join(r.text for r in chunks) + "\n"

    assert penalised == mlx_lm_answer(20)
    # the context size acts too: a window of 1 token penalises only the last one
    narrow, _ = _answer([*base, "--repetition-penalty", "1.8", "--repetition-context-size", "1"], monkeypatch)
    assert narrow == mlx_lm_answer(1) and narrow != penalised


def test_ignore_chat_template_sends_the_raw_prompt(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlx_lm import generate as mlx_generate

    model, tok = mlx_load(str(tiny_model_dir))
    raw = tok.encode(PROMPT)  # as mlx_lm.generate --ignore-chat-template encodes it
    expected = mlx_generate(model, tok, prompt=raw, max_tokens=10, verbose=False)
    out, err = _answer(
        ["--model", str(tiny_model_dir), "-p", PROMPT, "-m", "10", "--ignore-chat-template"], monkeypatch
    )
    assert out == expected + "\n"
    assert f"Prompt: {len(raw)} tokens" in err
    templated = len(render_prompt(tok, [{"role": "user", "content": PROMPT}]))
    assert templated != len(raw)
    _, err = _answer(["--model", str(tiny_model_dir), "-p", PROMPT, "-m", "10"], monkeypatch)
    assert f"Prompt: {templated} tokens" in err


def test_sampling_flags_out_of_range_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for argv, says in [
        (["--top-k", "-1"], "--top-k must be 0 (off) or more"),
        (["--min-p", "1.5"], "--min-p must be in [0, 1]"),
        (["--repetition-penalty", "0.5"], "--repetition-penalty must be from 1 (off) to 2, not 0.5"),
        (["--repetition-penalty", "3"], "--repetition-penalty must be from 1 (off) to 2, not 3"),
        (["--repetition-context-size", "0"], "--repetition-context-size must be at least 1"),
        (["--ignore-chat-template", "--system-prompt", "be brief"], "--system-prompt needs the chat template"),
    ]:
        code, _, err = _run(["--model", "demo", *argv], monkeypatch)
        assert code == 2 and says in err, err
