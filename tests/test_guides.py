"""Every command line of the five guides (tests/guides/, the seeds) runs with `mlxtui` in place
of the program it names, through the real CLI entry, in the guide's order.

The lines are read out of the guides' code blocks (backslash continuations joined, comments
dropped, shlex-split), so a guide line is run as it is written. What changes, and only that:

- the program: `python train.py`, `mlx_lm.lora`, `python -m mlx_lm lora`, `mlx_lm.generate`,
  `python -m mlx_lm.generate`, `mlx_lm.fuse`, `mlx_lm.convert`, with a `uv run ` or
  `uvx --from mlx-lm ` in front, become `mlxtui train|lora|generate|fuse|convert` (PROGRAMS);
- a hub model id or placeholder (`...`, `your-model-name`) becomes a local tiny model: 4-bit
  when the id says 4bit, else float, with as many layers as the guide's lines adapt
  (`layers_needed`: 16, mlx-lm's default, unless every training line names fewer; 4 at the
  least). The same per-layer code runs; a step of 4 layers is about a quarter of 16's work;
- `--iters N` above 1 becomes `--iters 1`, and a training line without `--iters` (mlx-lm's
  default, 1000) gets `--iters 1`: every guide length takes minutes on two shared CPU cores,
  and one step already trains, validates and saves. The guide's line is what the test reads;
  `to_argv` marks the change (`SHORTENED`).
- the data are the demo dataset's shortest few examples (the guides leave the data to the
  reader): short rows make every step and validation cheap.

Lines the tests leave out are listed with the reason in LEFT_OUT; every other line of a guide
that names one of the programs must run, or the test fails (`test_every_line_is_run_or_left_out_with_a_reason`).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlxtui.cli.main import main
from mlxtui.demo_data import demo_data_dir

GUIDES = Path(__file__).parent / "guides"
# the guide's program -> mlxtui's argv head; the longest match wins
PROGRAMS = {
    "python train.py": ["train"],
    "python -m mlx_lm lora": ["lora"],
    "python -m mlx_lm.lora": ["train"],
    "mlx_lm.lora": ["train"],
    "python -m mlx_lm.generate": ["generate"],
    "mlx_lm.generate": ["generate"],
    "mlx_lm.fuse": ["fuse"],
    "mlx_lm.convert": ["convert"],
}
PREFIXES = ("uvx --from mlx-lm ", "uv run ")
SHORT_ITERS = 1
LAYER_FLAGS = ("--num-layers", "--lora-layers")
MIN_LAYERS = 4
LEFT_OUT = {
    # the line: why the test does not run it
    "mlx_lm.fuse --model mlx-community/Llama-3.2-3B-Instruct-4bit --adapter-path ./adapters "
    "--upload-repo your-username/your-model-name": "uploads to the Hugging Face hub, which this test "
    "machine cannot reach; `mlxtui fuse --upload-repo` without a token is refused before fusing "
    "(test_the_upload_line_says_what_is_missing)",
}


def command_lines(text: str) -> list[str]:
    """The lines of the guide's code blocks that run one of PROGRAMS, continuations joined."""
    out = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = line.strip()
            bare = line
            for prefix in PREFIXES:
                bare = bare.removeprefix(prefix)
            if any(bare.startswith(p + " ") or bare == p for p in PROGRAMS):
                out.append(line)
    return out


def _normal(line: str) -> str:
    return " ".join(shlex.split(line, comments=True))


def to_argv(line: str, models: dict[str, Path]) -> list[str]:
    """The mlxtui argv of a guide line: program replaced, hub model local, iterations short."""
    words = shlex.split(line, comments=True)
    for prefix in PREFIXES:
        if words[: len(prefix.split())] == prefix.split():
            words = words[len(prefix.split()):]
    program = max((p for p in PROGRAMS if words[: len(p.split())] == p.split()), key=len)
    rest = words[len(program.split()):]
    argv = list(PROGRAMS[program])
    i = 0
    while i < len(rest):
        word = rest[i]
        if word in ("--model", "--hf-path") and i + 1 < len(rest) and not Path(rest[i + 1]).exists():
            hub = rest[i + 1]
            if not (word == "--hf-path" and argv[0] == "convert" and "--mlx-path" in rest
                    and Path(rest[rest.index("--mlx-path") + 1]).exists()):
                argv += [word, str(models["4bit" if "4bit" in hub else "float"])]
                i += 2
                continue
        if word == "--iters" and int(rest[i + 1]) > SHORT_ITERS:
            argv += [word, str(SHORT_ITERS)]  # SHORTENED: the guide's value takes minutes here
            i += 2
            continue
        argv.append(word)
        i += 1
    trains = argv[0] in ("train", "lora") and (program == "python train.py" or "--train" in argv)
    if trains and "--iters" not in argv:
        argv += ["--iters", str(SHORT_ITERS)]  # SHORTENED: mlx-lm's default of 1000 takes minutes here
    return argv


def layers_needed(name: str) -> int:
    """The most layers a training line of the guide adapts on a mapped model: mlx-lm's 16 when
    one names none."""
    most = MIN_LAYERS
    for line in command_lines((GUIDES / name).read_text(encoding="utf-8")):
        words = shlex.split(line, comments=True)
        if "--train" not in words and not line.startswith("python train.py"):
            continue
        if "--model" not in words:  # bare `python train.py` trains the demo model, not these
            continue
        named = [int(words[i + 1]) for i, w in enumerate(words[:-1]) if w in LAYER_FLAGS]
        most = max(most, *named) if named else 16
    return most


@pytest.fixture(scope="module")
def model_sets(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """`model_sets(layers)`: the float and 4-bit tiny models of that depth, made once per module
    and shared by every guide that needs that depth."""
    from tiny_model import make_tiny_model

    root = tmp_path_factory.mktemp("guide_models")
    made: dict[int, dict[str, Path]] = {}

    def of(layers: int) -> dict[str, Path]:
        if layers not in made:
            made[layers] = {
                "float": make_tiny_model(root / f"{layers}" / "Llama-3.2-3B-Instruct", num_layers=layers),
                "4bit": make_tiny_model(
                    root / f"{layers}" / "Llama-3.2-3B-Instruct-4bit", num_layers=layers, quantize_bits=4
                ),
            }
        return made[layers]

    return of


@pytest.fixture(scope="module")
def models(model_sets: Any) -> dict[str, Path]:
    return model_sets(16)


def _data(folder: Path, n: int = 4, splits: tuple[str, ...] = ("train", "valid", "test")) -> Path:
    """The demo dataset's n shortest chat examples per split, in the guides' layout
    (train/valid/test.jsonl); 4 fill one batch of the guides' --batch-size 4."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in splits:
        lines = (demo_data_dir() / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        shortest = sorted(lines, key=len)[:n]
        (folder / f"{name}.jsonl").write_text("\n".join(shortest) + "\n", encoding="utf-8")
    return folder


def _run_guide(
    name: str,
    models: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch | None = None,
    project_model: str | None = None,
) -> list[str]:
    """Run the guide's lines in order in the current folder. With `project_model`, a line that
    trains another model runs in a folder of its own (with ./data linked), as a reader trying that
    section would: its ./adapters are another model's, which the guide's later lines do not mean."""
    ran = []
    home = Path.cwd()
    for line in command_lines((GUIDES / name).read_text(encoding="utf-8")):
        if _normal(line) in LEFT_OUT:
            continue
        argv = to_argv(line, models)
        words = shlex.split(line, comments=True)
        model = words[words.index("--model") + 1] if "--model" in words else None
        if monkeypatch is not None:
            other = project_model is not None and model not in (None, project_model)
            where = home / re.sub(r"\W+", "_", model or "") if other else home
            if other and not where.exists():
                where.mkdir()
                (where / "data").symlink_to(home / "data")
            monkeypatch.chdir(where)
        code = main(argv)
        out, err = capsys.readouterr()
        if code == 1 and "exists and is not empty" in err and "--save-path" in argv:
            # The guide's second fuse into ./fused-model is an alternative to the first; mlx_lm.fuse
            # overwrites, mlxtui keeps the first and says so. The reader follows the message.
            assert "pass --force to replace it" in err
            shutil.rmtree(argv[argv.index("--save-path") + 1])
            code = main(argv)
            out, err = capsys.readouterr()
        assert code == 0, f"{line}\n-> mlxtui {shlex.join(argv)}\n{out[-2000:]}\n{err[-2000:]}"
        ran.append(shlex.join(argv))
    return ran


def test_every_line_is_run_or_left_out_with_a_reason():
    seen = {_normal(line) for g in sorted(GUIDES.glob("*.md")) for line in command_lines(g.read_text())}
    assert set(LEFT_OUT) <= seen, "a LEFT_OUT line no longer appears in any guide"
    assert len(seen) >= 25  # the guides hold that many lines to run: a broken reader finds fewer


def test_the_layers_each_guide_needs():
    assert layers_needed("000_train_py_readme.md") == MIN_LAYERS  # --num-layers 1 (the bare line is the demo)
    assert layers_needed("001_mlx_lm_guide.md") == 16  # lines without --lora-layers: mlx-lm's 16
    assert layers_needed("002_technical_notes.md") == MIN_LAYERS
    assert layers_needed("003_fine_tuning_skill.md") == 8
    assert layers_needed("004_course_exercise.md") == 16


def test_the_mapping_of_programs():
    m = {"float": Path("/m/f"), "4bit": Path("/m/q")}
    assert to_argv('python train.py --model "your-model-name" --iters 225', m) == [
        "train", "--model", "/m/f", "--iters", "1"]
    assert to_argv("uv run python -m mlx_lm lora --model x-4bit --train  # note", m) == [
        "lora", "--model", "/m/q", "--train", "--iters", "1"]
    assert to_argv("uvx --from mlx-lm mlx_lm.generate --model Qwen/Qwen3-0.6B --prompt hi", m)[:3] == [
        "generate", "--model", "/m/f"]


def test_guide_000_train_py_readme(model_sets, tmp_path, monkeypatch, capsys):
    """The wrapper's quick start and its custom line; `python train.py` alone is the demo (slow test)."""
    models = model_sets(layers_needed("000_train_py_readme.md"))
    monkeypatch.chdir(tmp_path)
    _data(tmp_path / "data", splits=("train", "valid"))  # "Place your training data in the data directory"
    lines = command_lines((GUIDES / "000_train_py_readme.md").read_text())
    assert len(lines) == 3
    # the bare `python train.py` trains the demo model: test_guide_000_bare_train_py (slow)
    for line in (lines[0], lines[2]):
        argv = to_argv(line, models)
        assert main(argv) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        assert "data: ./data (mlx_lm.lora's default folder" in out  # the guide's data folder, not the demo
        assert f"done: {SHORT_ITERS}/{SHORT_ITERS} steps" in out
    # the first line's run, by its model's name (both runs can start within one second, and
    # the folders' timestamps then do not order them)
    runs = [p for p in (tmp_path / "runs").iterdir() if p.name.endswith("-Instruct-4bit")]
    assert len(runs) == 1, sorted((tmp_path / "runs").iterdir())
    cfg = json.loads((runs[0] / "adapters" / "adapter_config.json").read_text())
    # python train.py --batch-size 4 --iters 222 --learning-rate 2e-4 --num-layers 1 --grad-checkpoint
    #   --steps-per-eval 222 --val-batches 2 --steps-per-report 10 --save-every 222
    assert (cfg["batch_size"], cfg["learning_rate"], cfg["num_layers"], cfg["grad_checkpoint"]) == (4, 2e-4, 1, True)
    assert (cfg["val_batches"], cfg["steps_per_report"], cfg["save_every"]) == (2, 10, 222)
    assert cfg["data"] == "data"


@pytest.mark.slow
def test_guide_000_bare_train_py(tmp_path, monkeypatch, capsys, demo_model_dir):
    """`python train.py` (no flags): the quick start on the demo model and data; SHORTENED to
    1 iteration, 1 validation batch, batches of 2 and no sample answers. The quick start's 4
    validation batches at step 0 and at the end, and its 2 sample answers, are most of a minute
    of the 135M model on two CPU cores; one batch runs the same validation code, a batch of 2 the
    same step as one of 4 at half the cost, and sample answers are tested on the tiny model
    (test_fields_act, test_training_phases)."""
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--iters", str(SHORT_ITERS), "--val-batches", "1", "--batch-size", "2", "--sample-prompts", "0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"done: {SHORT_ITERS}/{SHORT_ITERS} steps" in out
    assert "SmolLM2-135M-Instruct" in out and "step 0: val loss" in out  # the demo model, validated


def test_guide_001_mlx_lm_guide(models, tmp_path, monkeypatch, capsys):
    """LoRA, all options, resume, QLoRA, full, test, generate, fuse (plain, de-quantized, GGUF),
    memory lines: in the guide's order, so the resume line finds ./my-adapters and the test,
    generate and fuse lines find ./adapters."""
    monkeypatch.chdir(tmp_path)
    _data(tmp_path / "data")
    ran = _run_guide("001_mlx_lm_guide.md", models, capsys, monkeypatch, "mlx-community/Llama-3.2-3B-Instruct-4bit")
    assert len(ran) == 15
    assert (tmp_path / "my-adapters" / "adapters.safetensors").is_file()
    assert (tmp_path / "fused-model" / "config.json").is_file()
    assert (tmp_path / "fused_model" / "model.gguf").is_file()  # --gguf-path is inside --save-path, as in mlx_lm.fuse
    fused = json.loads((tmp_path / "fused-model" / "config.json").read_text())
    assert "quantization" not in fused  # the last fuse into ./fused-model was --de-quantize


def test_guide_002_technical_notes(model_sets, tmp_path, monkeypatch, capsys):
    models = model_sets(layers_needed("002_technical_notes.md"))
    monkeypatch.chdir(tmp_path)
    _data(tmp_path / "data")
    ran = _run_guide("002_technical_notes.md", models, capsys)
    assert [a.split()[0] for a in ran] == ["train", "generate"]


def test_guide_003_fine_tuning_skill(model_sets, tmp_path, monkeypatch, capsys):
    """Convert (quantized), train on it, answer, fuse, convert back to Hugging Face layout."""
    models = model_sets(layers_needed("003_fine_tuning_skill.md"))
    monkeypatch.chdir(tmp_path)
    _data(tmp_path / "data")
    (tmp_path / "models").mkdir()
    ran = _run_guide("003_fine_tuning_skill.md", models, capsys)
    assert [a.split()[0] for a in ran] == ["convert", "lora", "lora", "fuse", "convert"]
    assert (tmp_path / "adapters" / "my-lora" / "adapters.safetensors").is_file()
    assert (tmp_path / "models" / "hf-export" / "config.json").is_file()


def test_guide_003_lr_schedule_phases(model_sets, tmp_path, monkeypatch, capsys):
    """`--lr-schedule "400:2e-5,400:1e-5,200:2e-6"` (SHORTENED to 1:2e-5,1:1e-5,1:2e-6): the phases run,
    with the skill's own --num-layers 8."""
    models = model_sets(layers_needed("003_fine_tuning_skill.md"))
    monkeypatch.chdir(tmp_path)
    _data(tmp_path / "data")
    text = (GUIDES / "003_fine_tuning_skill.md").read_text()
    assert '--lr-schedule "400:2e-5,400:1e-5,200:2e-6"' in text
    argv = ["train", "--model", str(models["float"]), "--data", "data", "--lr-schedule", "1:2e-5,1:1e-5,1:2e-6",
            "--steps-per-report", "1", "--num-layers", "8"]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "lr 2.00e-05" in out and "lr 1.00e-05" in out and "lr 2.00e-06" in out


def test_guide_003_python_api(model_sets, tmp_path, monkeypatch):
    """The skill's pipeline code, with `from mlxtui import ...` for `from training.mlx import ...`
    and the local model; iters=500 SHORTENED to 1."""
    models = model_sets(layers_needed("003_fine_tuning_skill.md"))
    monkeypatch.chdir(tmp_path)
    _data(tmp_path / "data")
    from mlxtui import TrainConfig, TrainPipeline

    config = TrainConfig(
        model=str(models["4bit"]),
        train_data="data/train.jsonl",
        iters=SHORT_ITERS,
        learning_rate=1e-5,
        num_layers=8,
        grad_checkpoint=True,
    )
    pipeline = TrainPipeline(config)
    result = pipeline.execute()
    assert result.status == "completed"
    saved = json.loads((Path(result.adapter_path) / "adapter_config.json").read_text())
    # train.jsonl names its folder: data/valid.jsonl beside it validates, as with --data data
    assert Path(saved["data"]) == (tmp_path / "data").resolve()
    assert result.val_losses


def test_guide_004_course_exercise(model_sets, tmp_path, monkeypatch, capsys):
    """The exercise writes only training-data/train.jsonl (the text format it shows), trains, answers."""
    models = model_sets(layers_needed("004_course_exercise.md"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "training-data").mkdir()  # mkdir -p training-data
    text = (GUIDES / "004_course_exercise.md").read_text()
    examples = re.search(r"```jsonl\n(.*?)```", text, re.S).group(1).strip().splitlines()
    # echo "$JSONL_DATA" > training-data/train.jsonl: the guide's two examples, twice (batch 4 needs 4)
    (tmp_path / "training-data" / "train.jsonl").write_text("\n".join(examples * 2) + "\n")
    ran = _run_guide("004_course_exercise.md", models, capsys)
    assert [a.split()[0] for a in ran] == ["train", "generate"]
    assert (tmp_path / "adapters" / "adapters.safetensors").is_file()


def test_the_upload_line_says_what_is_missing(models, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    line = next(iter(LEFT_OUT))
    assert main(to_argv(line, models)) == 1
    assert "token" in capsys.readouterr().err.lower()
