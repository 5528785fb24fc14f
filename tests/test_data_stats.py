"""Dataset stats: counts, token lengths (exact with the tiny tokenizer, estimated without)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlx_lm.tokenizer_utils import load

from mlxtui.core.data import dataset_stats, format_stats, histogram, render_example


def chat(i: int, words: int) -> dict:
    return {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"Question {i}?"},
            {"role": "assistant", "content": " ".join(["word"] * words)},
        ]
    }


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    rows = [chat(i, 5 + 20 * i) for i in range(10)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "{bad\n\n")
    (tmp_path / "valid.jsonl").write_text(json.dumps(chat(99, 3)) + "\n")
    return tmp_path


def test_stats_with_tokenizer(data_dir: Path, tiny_model_dir: Path) -> None:
    tok = load(tiny_model_dir)
    calls: list[tuple[int, int]] = []
    s = dataset_stats(
        data_dir, tok, max_seq_length=100, batch_size=4, progress=lambda d, t: calls.append((d, t))
    )
    assert not s.approximate
    assert s.counts == {"train": 10, "valid": 1}
    train = s.split("train")
    assert (
        train is not None and train.skipped == 1 and train.format == "chat" and s.format == "chat"
    )
    rendered = [render_example(chat(i, 5 + 20 * i), tok, mask_prompt=True) for i in range(10)]
    assert list(train.token_lengths) == [r.tokens for r in rendered]
    assert train.over_max == sum(r.tokens > 100 for r in rendered) > 0
    assert train.mean_prompt_tokens == pytest.approx(sum(r.prompt_tokens for r in rendered) / 10)
    assert train.mean_completion_tokens == pytest.approx(
        sum(r.completion_tokens for r in rendered) / 10
    )
    assert train.role_counts == {"system": 10, "user": 10, "assistant": 10}
    assert s.iterations_per_epoch == 2  # 10 // 4: mlx-lm drops the partial batch
    total = sum(p.stat().st_size for p in data_dir.glob("*.jsonl"))
    assert calls[-1] == (total, total)
    text = format_stats(s)
    assert "2 iterations per epoch" in text and "estimated" not in text


def test_stats_without_tokenizer_is_estimate(data_dir: Path) -> None:
    s = dataset_stats(data_dir, None, batch_size=3)
    assert s.approximate and s.iterations_per_epoch == 3
    assert "estimated" in format_stats(s)
    assert all(n > 0 for n in s.split("train").token_lengths)


def test_completions_roles(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"prompt": "a", "completion": "b"}\n' * 3)
    s = dataset_stats(tmp_path)
    assert s.split("train").role_counts == {"user": 3, "assistant": 3} and s.format == "completions"
    assert s.iterations_per_epoch == 1


def test_histogram() -> None:
    assert histogram([]) == []
    h = histogram([1, 2, 3, 10], bins=3)
    assert [c for _, _, c in h] == [3, 0, 1]
    assert h[0][0] == 1 and h[-1][1] > 10
    assert sum(c for *_, c in histogram(list(range(1000)), bins=7)) == 1000
    assert histogram([5, 5, 5], bins=10) == [(5, 6, 3)]


def test_empty_folder(tmp_path: Path) -> Any:
    s = dataset_stats(tmp_path)
    assert s.splits == () and s.iterations_per_epoch == 0 and "no train.jsonl" in format_stats(s)
