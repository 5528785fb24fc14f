"""No TrainConfig field is accepted and ignored: each one changes what runs (seen in one real
tiny-model run's events and files, or in the test named for it) or is refused with the reason.

EFFECTS is the table: field -> where its effect is shown. "run: ..." entries are checked by
test_one_run_shows_its_settings_acting below; "test: file::name" entries name the test that shows
it, and the walk checks that the test exists; "refused: ..." entries are checked here.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest
from demo_slice import demo_slice

from mlxtui.core import events as ev
from mlxtui.core.config import ConfigError, TrainConfig, from_dict

TESTS = Path(__file__).parent
EFFECTS: dict[str, str] = {
    "model": "run: the model loaded (ModelLoaded.path) is the one named",
    "data": "run: the training set of that folder is the one tokenized (trained tokens)",
    "train": "test: test_cli.py::test_test_only_needs_a_real_adapter (off: test only); both off refused: test_config.py::test_data_files_make_the_data_folder",
    "fine_tune_type": "test: test_training.py::test_each_fine_tune_type_trains",
    "optimizer": "test: test_fields_act.py::test_the_optimizer_is_the_one_named_with_its_options",
    "optimizer_config": "test: test_fields_act.py::test_the_optimizer_is_the_one_named_with_its_options",
    "mask_prompt": "test: test_fields_act.py::test_memory_eval_and_masking_settings_act (fewer trained tokens, another loss)",
    "num_layers": "run: adapter weights exist for the last N blocks only",
    "batch_size": "run: trained tokens per step stay within batch_size x max_seq_length",
    "iters": "run: TrainFinished after that many steps",
    "val_batches": "test: test_fields_act.py::test_memory_eval_and_masking_settings_act (validation batches read)",
    "learning_rate": "run: the reported learning rate",
    "steps_per_report": "run: TrainReport iterations",
    "steps_per_eval": "run: ValReport iterations",
    "resume_adapter_file": "test: test_training.py::test_resume_adapter_file_starts_from_those_weights",
    "adapter_path": "run: the final adapter is also written there",
    "save_every": "run: CheckpointSaved iterations",
    "test": "run: TestResult after training",
    "test_batches": "test: test_fields_act.py::test_memory_eval_and_masking_settings_act (test batches read)",
    "max_seq_length": "run: trained tokens per step stay within batch_size x max_seq_length",
    "grad_checkpoint": "test: test_fields_act.py::test_memory_eval_and_masking_settings_act (the block class's __call__ wrapped during the run only)",
    "grad_accumulation_steps": "test: test_grad_norm.py::test_with_accumulation_the_norm_comes_with_each_update (an update every 2nd step)",
    "max_grad_norm": "test: test_grad_norm.py::test_clipping_caps_the_update; 0 or below refused",
    "clear_cache_threshold": "test: test_cache_clearing.py::test_the_cache_is_kept_with_0_and_cleared_above_a_small_threshold",
    "seed": "test: test_training.py::test_exact_resume_matches_a_straight_run (the order comes from the seed)",
    "lr_schedule": "test: test_config.py::test_the_preview_matches_the_optimizer_schedule",
    "lora_parameters": "run: rank gives the adapter matrices' shape",
    "report_to": "test: test_reporting.py::test_reports_go_through_mlx_lms_wandb_callback",
    "project_name": "test: test_reporting.py::test_reports_go_through_mlx_lms_wandb_callback; alone refused",
    "trust_remote_code": "test: test_fields_act.py::test_trust_remote_code_lets_a_models_own_code_run",
    "hf_dataset": "test: test_hub_data.py::test_the_splits_and_features_reach_mlx_lms_loader",
    "prompt_feature": "test: test_config.py::test_optimizer_options_and_dataset_keys_in_the_form",
    "completion_feature": "test: test_config.py::test_optimizer_options_and_dataset_keys_in_the_form",
    "chat_feature": "test: test_hub_data.py::test_the_splits_and_features_reach_mlx_lms_loader",
    "text_feature": "test: test_config.py::test_optimizer_options_and_dataset_keys_in_the_form",
    "train_data": "test: test_guides.py::test_guide_003_python_api",
    "valid_data": "test: test_config.py::test_data_files_make_the_data_folder",
    "test_data": "test: test_config.py::test_data_files_make_the_data_folder",
    "epochs": "test: test_training.py::test_epochs_set_the_iterations",
    "lr_phases": "test: test_training.py::test_learning_rate_phases_are_followed",
    "warmup": "run: the first reported learning rate is below the target",
    "dequantize": "test: test_training.py::test_qlora_on_a_quantized_base",
    "early_stopping_patience": "test: test_training.py::test_best_checkpoint_and_early_stopping",
    "early_stopping_min_delta": "test: test_training.py::test_best_checkpoint_and_early_stopping",
    "memory_guard": "test: test_engine_memory.py::test_a_swap_ramp_pauses_training_and_recovery_continues_it",
    "swap_growth_mb_per_min": "test: test_guard.py::test_swap_ramp_pauses_then_recovery_resumes",
    "memory_limit": "test: test_fields_act.py::test_memory_eval_and_masking_settings_act (MLX's limit during the run, restored after)",
    "cache_limit": "test: test_fields_act.py::test_memory_eval_and_masking_settings_act (MLX's limit during the run, restored after)",
    "sample_prompts": "run: SamplePredictions at each evaluation",
    "run_name": "run: the run folder's name ends with it",
    "runs_dir": "run: the run folder is made inside it",
    "resume_run": "test: test_training.py::test_resume_continues_the_lr_schedule",
    "nproc": "test: test_distributed.py::test_two_ranks_match_one_process_with_the_same_effective_batch; without a launch refused: test_distributed.py::test_nproc_without_a_launch_is_refused_not_ignored",
    "hosts": "test: test_distributed.py::test_launch_command_runs_this_train_on_every_rank (mlx.launch --hostfile); with nproc refused: test_distributed.py::test_bad_launch_settings_are_refused_with_the_setting_named",
    "backend": "test: test_distributed.py::test_launch_command_runs_this_train_on_every_rank (mlx.launch --backend)",
    "rank_timeout": "test: test_distributed.py::test_the_watcher_ends_a_launch_whose_ranks_went_silent",
    "pack": "test: test_packing.py::test_per_example_losses_match_unpacked (and test_packed_training_resumes_exactly)",
}


# Fields that act (each is handed to MLX or mlx-lm) but no test here shows the effect yet.
NOT_YET_SHOWN: set[str] = set()


def test_the_table_covers_every_field():
    assert set(EFFECTS) == {f.name for f in fields(TrainConfig)}
    assert {k for k, v in EFFECTS.items() if v.startswith("not yet shown")} == NOT_YET_SHOWN


def test_one_run_shows_its_settings_acting(tiny_model_dir, tmp_path):
    """The "run:" rows: one tiny run with each of them away from its default."""
    from mlxtui import TrainPipeline

    data = _small_data(tmp_path)
    cfg = TrainConfig(
        model=str(tiny_model_dir), data=str(data), iters=6, batch_size=2, max_seq_length=48, num_layers=2,
        learning_rate=3e-4, warmup=3, steps_per_report=3, steps_per_eval=2, save_every=4, test=True,
        optimizer="adamw", optimizer_config={"adamw": {"weight_decay": 0.25}}, lora_parameters={"rank": 4, "scale": 10.0, "dropout": 0.0},
        adapter_path=str(tmp_path / "mine"), run_name="walk", runs_dir=str(tmp_path / "runs"), sample_prompts=1,
        memory_guard="off",
    )
    seen: list[ev.Event] = []
    result = TrainPipeline(cfg, on_event=seen.append).execute()
    of = lambda kind: [e for e in seen if isinstance(e, kind)]  # noqa: E731
    run_dir = Path(of(ev.TrainStarted)[0].run_dir)
    assert run_dir.parent == tmp_path / "runs" and run_dir.name.endswith("walk")  # runs_dir, run_name
    assert [e.iteration for e in of(ev.TrainReport)] == [3, 6]  # steps_per_report
    assert [e.iteration for e in of(ev.ValReport)] == [0, 2, 4, 6]  # steps_per_eval (0: before training, as mlx-lm)
    assert {e.iteration for e in of(ev.CheckpointSaved) if e.kind == "periodic"} == {4}  # save_every
    assert result.final_iteration == 6  # iters
    steps = of(ev.TrainStep)
    assert steps[0].learning_rate < 3e-4 and steps[-1].learning_rate == pytest.approx(3e-4)  # warmup, learning_rate
    assert all(b.trained_tokens - a.trained_tokens <= 2 * 48 for a, b in zip(steps, steps[1:], strict=False))  # batch_size, max_seq_length
    assert of(ev.TestResult)  # test
    assert of(ev.SamplePredictions)  # sample_prompts
    assert (tmp_path / "mine" / "adapters.safetensors").is_file()  # adapter_path
    import mlx.core as mx

    weights = mx.load(str(result.adapter_path / "adapters.safetensors"))
    layers = {int(k.split(".")[2]) for k in weights}
    assert layers == {2, 3}  # num_layers: the last 2 of 4 blocks
    a = next(v for k, v in weights.items() if k.endswith("lora_a"))
    assert 4 in a.shape  # lora_parameters.rank
    saved = json.loads((result.adapter_path / "adapter_config.json").read_text())
    assert saved["model"] == str(tiny_model_dir) and saved["data"] == str(data)  # model, data



def _small_data(root: Path, n: int = 8) -> Path:
    return demo_slice(root / "data", train=n, valid=n, test=n)


def _run_seeing(cfg: TrainConfig, on_step=None) -> list[ev.Event]:
    from mlxtui import TrainPipeline

    seen: list[ev.Event] = []

    def on_event(e: ev.Event) -> None:
        seen.append(e)
        if on_step is not None and isinstance(e, ev.TrainStep):
            on_step(e)

    TrainPipeline(cfg, on_event=on_event).execute()
    return seen


def test_memory_eval_and_masking_settings_act(tiny_model_dir, tmp_path):
    """mask_prompt, val_batches, test_batches, grad_checkpoint, memory_limit, cache_limit: one run
    with each set, beside one with the defaults (same seed, same data)."""
    import mlx.core as mx
    from mlx_lm.models.llama import TransformerBlock

    data = _small_data(tmp_path)
    base = dict(
        model=str(tiny_model_dir), data=str(data), iters=2, batch_size=2, max_seq_length=64, num_layers=2,
        steps_per_eval=2, test=True, sample_prompts=0, memory_guard="off", runs_dir=str(tmp_path / "runs"),
    )
    plain_call = TransformerBlock.__call__
    limits_before = (mx.get_memory_limit(), mx.set_cache_limit(mx.set_cache_limit(0)))
    during: list[tuple[bool, int, int, int]] = []

    def look(_step: ev.TrainStep) -> None:
        cache = mx.set_cache_limit(0)  # MLX has no getter for the cache limit: set returns it
        mx.set_cache_limit(cache)
        during.append((TransformerBlock.__call__ is plain_call, mx.get_memory_limit(), cache, mx.get_cache_memory()))

    set_ = _run_seeing(
        TrainConfig(**base, mask_prompt=True, val_batches=1, test_batches=2, grad_checkpoint=True,
                    memory_limit="3GB", cache_limit="48MB"),
        look,
    )
    assert during and all(not plain and mem == 3 << 30 and cache == 48 << 20 and used <= cache
                          for plain, mem, cache, used in during)  # grad_checkpoint, memory_limit, cache_limit
    # ...and for that run only: the class and MLX's limits are given back afterwards
    assert TransformerBlock.__call__ is plain_call
    assert (mx.get_memory_limit(), mx.set_cache_limit(mx.set_cache_limit(0))) == limits_before
    during.clear()
    plain = _run_seeing(TrainConfig(**base), look)
    assert during and all(p for p, *_ in during)  # without grad_checkpoint the blocks run as they are

    def batches_read(seen: list[ev.Event], phase: str) -> list[int]:
        started = [e.total for e in seen if isinstance(e, ev.PhaseStarted) and e.phase == phase]
        done = [e.done for e in seen if isinstance(e, ev.PhaseProgress) and e.phase == phase]
        return started + [max(done)]

    assert batches_read(set_, "validate")[-1] == 1 and set(batches_read(set_, "validate")) == {1}  # val_batches
    assert set(batches_read(set_, "test")) == {2}  # test_batches
    assert set(batches_read(plain, "validate")) == {4} and set(batches_read(plain, "test")) == {4}  # all 8 lines
    # mask_prompt: only the answers carry loss, so fewer tokens are trained and the first loss differs
    steps = lambda seen: [e for e in seen if isinstance(e, ev.TrainStep)]  # noqa: E731
    assert steps(set_)[0].trained_tokens < steps(plain)[0].trained_tokens
    first_val = lambda seen: next(e.val_loss for e in seen if isinstance(e, ev.ValReport))  # noqa: E731
    assert first_val(set_) != pytest.approx(first_val(plain), rel=1e-3)


def test_trust_remote_code_lets_a_models_own_code_run(tiny_model_dir, tmp_path):
    """A model folder whose config names its own architecture file (`model_file`, as hub models
    with custom code do) is refused unless trust_remote_code is set; set, that file builds it."""
    import shutil

    from mlxtui.core.jobs.context import EngineError

    model = tmp_path / "custom_model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "model_file": "my_arch.py"}))
    marker = tmp_path / "my_arch_ran"
    (model / "my_arch.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('ran')\n"
        "from mlx_lm.models.llama import Model, ModelArgs  # noqa: F401\n"
    )
    data = _small_data(tmp_path, 4)
    base = dict(model=str(model), data=str(data), iters=1, batch_size=2, max_seq_length=48, num_layers=1,
                steps_per_eval=100, sample_prompts=0, memory_guard="off", runs_dir=str(tmp_path / "runs"))
    with pytest.raises(EngineError, match="trust_remote_code"):
        _run_seeing(TrainConfig(**base))
    assert not marker.exists()
    seen = _run_seeing(TrainConfig(**base, trust_remote_code=True))
    assert marker.read_text() == "ran" and any(isinstance(e, ev.TrainFinished) for e in seen)

def test_the_optimizer_is_the_one_named_with_its_options():
    import mlx.optimizers as optim

    from mlxtui.core.training import build_optimizer

    opt = build_optimizer(TrainConfig(optimizer="adamw", optimizer_config={"adamw": {"weight_decay": 0.25}}), 10)
    assert isinstance(opt, optim.AdamW) and opt.weight_decay == 0.25
    assert isinstance(build_optimizer(TrainConfig(optimizer="sgd"), 10), optim.SGD)


@pytest.mark.parametrize("field", sorted(EFFECTS))
def test_each_named_test_exists(field):
    for file, name in re.findall(r"(test_\w+\.py)::(\w+)", EFFECTS[field]):
        text = (TESTS / file).read_text(encoding="utf-8")
        assert re.search(rf"^def {name}\(", text, re.M), f"{field}: {file}::{name} does not exist"


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"train": False}, "nothing would run"),
        ({"project_name": "p"}, "report_to is not set"),
        ({"report_to": "tensorboard"}, "not one of wandb, swanlab"),
        ({"lr_phases": "4:1e-5", "warmup": 2}, "make the first phase the warmup"),
        ({"lr_phases": "4:1e-5", "lr_schedule": {"name": "cosine_decay"}}, "give only one of them"),
        ({"hf_dataset": {"path": "a/b"}, "data": "d"}, "not both"),
        ({"hf_dataset": {"path": "a/b"}, "sample_prompts": 2}, "set sample_prompts to 0"),
    ],
)
def test_combinations_that_would_ignore_a_field_are_refused(values, reason):
    with pytest.raises(ConfigError, match=reason):
        from_dict(values)
