"""Test loss, before/after comparison, benchmark and the eval/bench commands."""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import pytest
from mlx_lm import load as mlx_load
from test_generation import greedy, make_adapter

from mlxtui.cli.eval import (
    add_bench_parser,
    add_eval_parser,
    format_bench,
    format_compare,
    format_losses,
)
from mlxtui.core.evaluation import (
    BenchResult,
    CompareReport,
    EvalError,
    before_after,
    benchmark,
    benchmark_base_and_adapter,
    load_records,
    prompt_and_reference,
    rouge_l,
    test_loss_and_ppl,
)
from mlxtui.core.generation import adapter_disabled
from mlxtui.demo_data import demo_data_dir

FAST = dict(batch_size=2, num_batches=2, max_seq_length=128)


@pytest.fixture(scope="module")
def tiny_adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(tiny_model_dir, tmp_path_factory.mktemp("eval") / "adapters")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlxtui")
    sub = p.add_subparsers(dest="command", required=True)
    add_eval_parser(sub)
    add_bench_parser(sub)
    return p


def test_records_and_rouge() -> None:
    records = load_records(demo_data_dir())
    pr = prompt_and_reference(records[0])
    assert pr is not None and pr[0][-1]["role"] == "user" and pr[1]
    assert prompt_and_reference({"prompt": "p", "completion": "c"}) == (
        [{"role": "user", "content": "p"}],
        "c",
    )
    assert prompt_and_reference({"text": "just text"}) is None
    assert rouge_l("the cat sat on the mat", "the cat sat on the mat") == 1.0
    assert rouge_l("the cat sat", "dogs run fast") == 0.0
    assert 0.0 < rouge_l("the cat sat on the mat", "a cat sat there") < 1.0


def test_bad_data_folder_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="test.jsonl does not exist"):
        load_records(tmp_path)
    (tmp_path / "test.jsonl").write_text('{"messages": []}\n{oops\n')
    with pytest.raises(EvalError, match=r"test.jsonl:2: invalid JSON"):
        load_records(tmp_path)


def test_test_loss_base_vs_adapter(tiny_model_dir: Path, tiny_adapter: Path) -> None:
    base_model, tok = mlx_load(str(tiny_model_dir))
    base_loss, base_ppl = test_loss_and_ppl(base_model, tok, demo_data_dir(), **FAST)
    assert math.isfinite(base_loss) and base_ppl == pytest.approx(math.exp(base_loss))
    model, tok = mlx_load(str(tiny_model_dir), adapter_path=str(tiny_adapter))
    loss, _ = test_loss_and_ppl(model, tok, demo_data_dir(), **FAST)
    assert loss != pytest.approx(base_loss, abs=1e-6)
    with adapter_disabled(model):
        off, _ = test_loss_and_ppl(model, tok, demo_data_dir(), **FAST)
    assert off == pytest.approx(base_loss, rel=1e-5)


def test_before_after_scores(tiny_model_dir: Path, tiny_adapter: Path) -> None:
    records = load_records(demo_data_dir())
    base_model, tok = mlx_load(str(tiny_model_dir))
    with pytest.raises(EvalError, match="no adapter"):
        before_after(base_model, tok, records, n=1)
    model, tok = mlx_load(str(tiny_model_dir), adapter_path=str(tiny_adapter))
    seen = []
    report = before_after(
        model, tok, records, n=3, max_tokens=6, progress=lambda m, d, t: seen.append((d, t))
    )
    assert isinstance(report, CompareReport) and len(report.rows) == 3
    assert seen[-1] == (6, 6)
    for row, rec in zip(report.rows, records, strict=False):
        msgs, ref = prompt_and_reference(rec)
        assert row.prompt == msgs[-1]["content"] and row.reference == ref
        assert 0.0 <= row.base_score <= 1.0 and 0.0 <= row.adapter_score <= 1.0
        assert row.base_score == pytest.approx(rouge_l(ref, row.base_answer))
        assert row.base_answer == greedy(base_model, tok, msgs, max_tokens=6).strip()
    assert any(r.base_answer != r.adapter_answer for r in report.rows)
    assert report.base_mean == pytest.approx(statistics.fmean(r.base_score for r in report.rows))
    assert report.adapter_mean == pytest.approx(
        statistics.fmean(r.adapter_score for r in report.rows)
    )
    table = format_compare(report)
    assert "mean ROUGE-L F1" in table and len(table.splitlines()) == 3 + 3 + 1
    assert json.loads(json.dumps(report.to_dict()))["rows"][0]["prompt"] == report.rows[0].prompt


def test_benchmark_fields(tiny_model_dir: Path, tiny_adapter: Path) -> None:
    model, tok = mlx_load(str(tiny_model_dir), adapter_path=str(tiny_adapter))
    r = benchmark(model, tok, "Hello there", runs=2, max_tokens=6)
    assert isinstance(r, BenchResult) and r.runs == 2
    assert r.prompt_tps_mean > 0 and r.gen_tps_mean > 0 and r.peak_memory_gb > 0
    assert r.prompt_tps_std >= 0 and r.gen_tps_std >= 0
    assert r.prompt_tokens > 0 and 0 < r.generation_tokens <= 6
    base, tuned = benchmark_base_and_adapter(model, tok, "Hello there", runs=1, max_tokens=4)
    assert base.runs == tuned.runs == 1 and base.gen_tps_std == 0.0
    text = format_bench({"base": base, "adapter": tuned})
    assert "gen tok/s" in text and "±" in text and len(text.splitlines()) == 3
    assert "test loss" in format_losses({"base": (1.0, math.e)})


def test_cli_eval_and_bench(
    tiny_model_dir: Path, tiny_adapter: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = _parser()
    args = p.parse_args(
        ["eval", "--model", str(tiny_model_dir), "--adapter-path", str(tiny_adapter), "--n", "2",
         "--max-tokens", "4", "--test-batches", "1", "--batch-size", "2", "--max-seq-length", "128", "--json"]
    )  # fmt: skip
    assert args.func(args) == 0
    printed = capsys.readouterr()
    out = json.loads(printed.out)
    # the engine's own Evaluate job: its phases are the progress lines (one test batch each)
    for phase in ("test loss of the base 1/1", "test loss of the adapter 1/1", "answers 2/2"):
        assert phase in printed.err, printed.err
    assert out["data"] == str(demo_data_dir())
    assert math.isfinite(out["base"]["test_loss"]) and math.isfinite(out["adapter"]["test_loss"])
    assert len(out["compare"]["rows"]) == 2
    assert 0.0 <= out["compare"]["adapter_mean"] <= 1.0

    args = p.parse_args(
        ["bench", "--model", str(tiny_model_dir), "--runs", "1", "--max-tokens", "4"]
    )
    assert args.func(args) == 0
    printed = capsys.readouterr()
    assert "base" in printed.out and "measuring generation speed 1/1" in printed.err

    args = p.parse_args(
        [
            "eval",
            "--model",
            str(tiny_model_dir),
            "--adapter-path",
            str(tiny_adapter),
            "--data",
            "/nope",
        ]
    )
    assert args.func(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("mlxtui eval: error:") and "/nope/test.jsonl does not exist" in err
    args = p.parse_args(
        ["bench", "--model", str(tiny_model_dir), "--adapter-path", "/no/such/adapter"]
    )
    assert args.func(args) == 1
    assert "no adapter weights at /no/such/adapter" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.demo
def test_demo_model_before_after(demo_model_dir: Path, tmp_path: Path) -> None:
    from mlxtui.core.generation import load_adapter_file
    from mlxtui.core.models import dequantize_model

    model, tok = mlx_load(str(demo_model_dir))
    dequantize_model(model)
    load_adapter_file(model, make_adapter(demo_model_dir, tmp_path / "a", num_layers=4, std=0.02))
    report = before_after(model, tok, load_records(demo_data_dir()), n=1, max_tokens=5)
    assert len(report.rows) == 1
    assert all(0.0 <= r.base_score <= 1.0 and 0.0 <= r.adapter_score <= 1.0 for r in report.rows)
    assert all(r.base_answer for r in report.rows)
    loss, ppl = test_loss_and_ppl(
        model, tok, demo_data_dir(), batch_size=2, num_batches=1, max_seq_length=128
    )
    assert math.isfinite(loss) and ppl > 1


def test_cli_model_defaults_to_the_adapters_base(
    tiny_model_dir: Path, tiny_adapter: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --model, eval/bench load the base named in adapter_config.json (as fuse does),
    not the demo model, which an adapter of another model does not fit."""
    from mlxtui.core.evaluation import default_model_for

    assert default_model_for(tiny_adapter) == str(tiny_model_dir)
    assert default_model_for(None) == "demo"
    assert default_model_for("/no/such/adapter") == "demo"
    args = _parser().parse_args(
        ["bench", "--adapter-path", str(tiny_adapter), "--runs", "1", "--max-tokens", "2", "--json"]
    )
    assert args.func(args) == 0, capsys.readouterr().err
    assert args.model == str(tiny_model_dir)
    assert set(json.loads(capsys.readouterr().out)) == {"base", "adapter"}
