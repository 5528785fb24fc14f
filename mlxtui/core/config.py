"""TrainConfig: every knob of a run, with mlx_lm.lora's names and defaults.

Precedence is mlx-lm's: defaults < YAML file < command-line flags. A YAML file that
`mlx_lm.lora --config` accepts loads here unchanged, and the YAML we write loads there
unchanged (keys mlx-lm does not know are ignored by it).

The dashboard and a bare `mlxtui train` start from `TrainConfig.quick_start()`, the proven
small-machine profile (batch 4, lr 2e-4 on a 4-bit base, gradient checkpointing on); a YAML
file or mlx-lm-style flags start from mlx-lm's own defaults, so a user's command line means
exactly what it meant to mlx_lm.lora.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePath
from typing import Any

FINE_TUNE_TYPES = ("lora", "dora", "full")
OPTIMIZERS = ("adam", "adamw", "muon", "sgd", "adafactor")
MEMORY_GUARD_POLICIES = ("pause", "warn", "off")
DEQUANTIZE_CHOICES = ("auto", "yes", "no")
SCHEDULE_NAMES = ("cosine_decay", "linear_schedule", "exponential_decay", "step_decay")
SCHEDULE_CHOICES = ("constant", "cosine_decay", "linear_decay")
# mlx_lm.lora's reporting callbacks (mlx_lm.tuner.callbacks.SUPPORT_CALLBACK) and the package each needs
REPORTERS = ("wandb", "swanlab")

# mlx-lm's default LoRA parameters (mlx_lm/lora.py CONFIG_DEFAULTS).
DEFAULT_LORA_PARAMETERS: dict[str, Any] = {"rank": 8, "dropout": 0.0, "scale": 20.0}


class ConfigError(ValueError):
    """A bad value or key: what is wrong and what to do (`message`), which setting (`field`,
    a name of the settings table: a TrainConfig field or a view such as lora_rank), and where
    it came from (`where`: a YAML file, "the command line").

    The message names no flag and no form label: each front end words the setting its own
    way (the CLI with `config.flag_for`, the dashboard with `config.field_label`). str() is
    the plain form, `where: field: message`, as YAML users and the Python API read it.
    """

    def __init__(self, message: str, field: str | None = None, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.where = where

    def __str__(self) -> str:
        return ": ".join(part for part in (self.where, self.field, self.message) if part)

    def at(self, where: str) -> ConfigError:
        """The same error, said to come from `where` (kept if it already names a place)."""
        return ConfigError(self.message, self.field, self.where or where)


def _default_lora() -> dict[str, Any]:
    return dict(DEFAULT_LORA_PARAMETERS)


def _default_optimizer_config() -> dict[str, Any]:
    return {name: {} for name in OPTIMIZERS}


@dataclass(frozen=True)
class TrainConfig:
    # --- mlx_lm.lora's options, same names and defaults (model/data: None = the demo ones)
    model: str | None = None
    data: str | None = None
    train: bool = True
    fine_tune_type: str = "lora"
    optimizer: str = "adam"
    optimizer_config: dict[str, Any] = field(default_factory=_default_optimizer_config)
    mask_prompt: bool = False
    num_layers: int = 16
    batch_size: int = 4
    iters: int = 1000
    val_batches: int = 25
    learning_rate: float = 1e-5
    steps_per_report: int = 10
    steps_per_eval: int = 200
    resume_adapter_file: str | None = None
    adapter_path: str = "adapters"
    save_every: int = 100
    test: bool = False
    test_batches: int = 500
    max_seq_length: int = 2048
    grad_checkpoint: bool = False
    grad_accumulation_steps: int = 1
    clear_cache_threshold: int = 0
    seed: int = 0
    lr_schedule: dict[str, Any] | None = None
    lora_parameters: dict[str, Any] = field(default_factory=_default_lora)
    report_to: str | None = None
    project_name: str | None = None
    trust_remote_code: bool = False
    # dataset keys mlx-lm's loaders read from the config
    hf_dataset: Any = None
    prompt_feature: str | None = None
    completion_feature: str | None = None
    chat_feature: str | None = None
    text_feature: str | None = None
    # the data as files (the Python API of the guides): each names one split's JSONL file
    train_data: str | None = None
    valid_data: str | None = None
    test_data: str | None = None
    # --- mlxtui's own (mlx_lm.lora ignores them in a YAML file)
    epochs: int | None = None
    lr_phases: str | None = None
    warmup: int = 0
    dequantize: str = "auto"
    early_stopping_patience: int = 0
    early_stopping_min_delta: float = 0.0
    max_grad_norm: float | None = None
    memory_guard: str = "pause"
    swap_growth_mb_per_min: float = 512.0
    memory_limit: str | None = None
    cache_limit: str | None = None
    sample_prompts: int = 0
    run_name: str | None = None
    runs_dir: str = "runs"
    resume_run: str | None = None
    pack: bool = False
    # --- distributed training (mx.distributed through mlx.launch; `mlxtui train` launches)
    nproc: int = 1
    hosts: str | None = None
    backend: str = "any"
    rank_timeout: float = 300.0

    # ------------------------------------------------------------ profiles

    @classmethod
    def quick_start(cls, **overrides: Any) -> TrainConfig:
        """The small-machine profile the dashboard opens with."""
        base = cls(
            batch_size=4,
            learning_rate=2e-4,
            grad_checkpoint=True,
            num_layers=8,
            iters=80,
            steps_per_report=5,
            steps_per_eval=20,
            save_every=20,
            val_batches=4,
            sample_prompts=2,
            max_seq_length=512,
            adapter_path="adapters",
        )
        return base.with_values(**overrides)

    def with_values(self, **changes: Any) -> TrainConfig:
        unknown = [k for k in changes if k not in FIELD_NAMES]
        if unknown:
            raise ConfigError(_unknown_key_message(unknown[0], "with_values()"))
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------ derived values

    @property
    def lora_rank(self) -> int:
        return int(self.lora_parameters.get("rank", DEFAULT_LORA_PARAMETERS["rank"]))

    @property
    def lora_scale(self) -> float:
        return float(self.lora_parameters.get("scale", DEFAULT_LORA_PARAMETERS["scale"]))

    @property
    def lora_alpha(self) -> float:
        """PEFT's alpha for the same update: PEFT scales by alpha/rank, mlx-lm by `scale`."""
        return self.lora_scale * self.lora_rank

    def resolved_iters(self, n_train: int | None) -> int:
        """Iterations to run: `epochs` wins when set (ceiling division), phases when given."""
        if self.epochs is not None:
            if n_train is None:
                raise ConfigError("is set but the training set size is unknown", "epochs")
            return epochs_to_iters(self.epochs, n_train, self.batch_size)
        if self.lr_phases:
            return sum(n for n, _ in parse_phases(self.lr_phases))
        return self.iters

    # ------------------------------------------------------------ validation

    def validate(self) -> None:
        """Raise ConfigError naming the first bad field and what to do."""
        check_nested(self.lora_parameters, self.optimizer_config)
        for spec in SETTINGS:
            if spec.name == "lr_schedule_name":
                continue  # the form's three choices; YAML may name any mlx-lm schedule (below)
            _value, error = validate_field(spec.name, get_field(self, spec.name))
            if error:
                raise ConfigError(error, spec.name)
        lp = self.lora_parameters
        for key in lp:
            if key not in ("rank", "scale", "dropout", "keys", "alpha"):
                raise ConfigError(
                    _unknown_key_message(
                        key, "lora_parameters", ("rank", "scale", "dropout", "keys")
                    )
                )
        if self.lr_schedule is not None:
            validate_schedule(self.lr_schedule)
        if self.lr_phases and self.lr_schedule is not None:
            raise ConfigError(
                "phases and a schedule both set the learning rate; give only one of them "
                "(lr_phases, or lr_schedule)",
                "lr_phases",
            )
        if self.lr_phases and self.warmup:
            raise ConfigError(
                "phases set the learning rate of every step, so a warmup would not be used; "
                "make the first phase the warmup (e.g. 50:1e-5,400:2e-5) or remove warmup",
                "warmup",
            )
        if self.hf_dataset is not None:
            validate_hf_dataset(self.hf_dataset)
            for other in ("data", "train_data", "valid_data", "test_data"):
                if getattr(self, other) is not None:
                    raise ConfigError(
                        f"and {other} both name the data; give hf_dataset (the hub) or {other} "
                        "(local files), not both",
                        "hf_dataset",
                    )
            if self.sample_prompts:
                raise ConfigError(
                    "sample prompts come from a local valid.jsonl, and hf_dataset has none: "
                    "set sample_prompts to 0 with hf_dataset",
                    "sample_prompts",
                )
        if self.project_name and not self.report_to:
            raise ConfigError(
                "names the wandb/swanlab project, but report_to is not set: set report_to "
                "(wandb or swanlab) too, or remove project_name",
                "project_name",
            )
        if not self.train and not self.test:
            raise ConfigError(
                "train and test are both off: nothing would run; turn on train, test or both",
                "train",
            )
        if self.lr_phases:
            parse_phases(self.lr_phases)
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError("must be at least 1 (or leave it unset to use iters)", "epochs")
        if self.grad_accumulation_steps < 1:
            raise ConfigError("must be at least 1", "grad_accumulation_steps")
        for name in ("memory_limit", "cache_limit"):
            value = getattr(self, name)
            if value is not None:
                parse_size(value, name)

    # ------------------------------------------------------------ YAML

    def to_mlx_lm_dict(self) -> dict[str, Any]:
        """The dict written to config.yaml: mlx-lm keys first, mlxtui's after (mlx-lm ignores them)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _OMIT_WHEN_NONE and value is None:
                continue
            out[f.name] = value
        return out

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_mlx_lm_dict(), sort_keys=False, default_flow_style=False)


FIELD_NAMES = tuple(f.name for f in fields(TrainConfig))
# A None value is left out of config.yaml (mlx_lm.lora then uses its own default), except the
# model and the data: there None means the demo ones, and mlx_lm.lora's would be another model.
_WRITTEN_WHEN_NONE = ("model", "data")
_OMIT_WHEN_NONE = {f.name for f in fields(TrainConfig) if f.default is None} - set(_WRITTEN_WHEN_NONE)
# Keys mlx_lm.lora puts in its own saved adapter_config.json / accepts in YAML.
MLX_LM_ONLY_KEYS = {"config"}


# ---------------------------------------------------------------- helpers


def epochs_to_iters(epochs: int, n_examples: int, batch_size: int) -> int:
    """300 examples, batch 4, 3 epochs -> 225 iterations (ceiling division)."""
    return math.ceil(epochs * n_examples / batch_size)


_PHASE_RE = re.compile(r"^\s*(\d+)\s*:\s*([0-9.eE+-]+)\s*$")


def parse_phases(text: str) -> list[tuple[int, float]]:
    """`400:2e-5,400:1e-5,200:2e-6` -> [(400, 2e-5), (400, 1e-5), (200, 2e-6)]."""
    phases: list[tuple[int, float]] = []
    for i, part in enumerate(text.split(","), start=1):
        m = _PHASE_RE.match(part)
        if not m:
            raise ConfigError(
                f"phase {i} '{part.strip()}' is not ITERATIONS:LEARNING_RATE "
                "(write e.g. 400:2e-5,400:1e-5,200:2e-6)",
                "lr_phases",
            )
        n, lr = int(m.group(1)), float(m.group(2))
        if n <= 0 or not (lr > 0 and math.isfinite(lr)):
            raise ConfigError(f"phase {i} needs iterations > 0 and a learning rate > 0", "lr_phases")
        phases.append((n, lr))
    return phases


def is_phases(text: Any) -> bool:
    """Whether `text` is written as learning-rate phases (ITERS:LR,...), not a schedule name."""
    return isinstance(text, str) and ":" in text


def validate_hf_dataset(value: Any) -> None:
    """mlx-lm's `hf_dataset`: a mapping with `path` (or a list of them), read by its loader."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ConfigError("is an empty list; give a mapping with 'path' (the hub dataset id)", "hf_dataset")
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str) or not item["path"]:
            raise ConfigError(
                "each dataset must be a mapping with 'path' (a Hugging Face dataset id), e.g. "
                "{path: mlx-community/wikisql, train_split: 'train[:80%]'}",
                "hf_dataset",
            )


def validate_schedule(schedule: Any) -> None:
    if not isinstance(schedule, dict):
        raise ConfigError("must be a mapping with 'name' and 'arguments'", "lr_schedule")
    for key in schedule:
        if key not in ("name", "arguments", "warmup", "warmup_init"):
            raise ConfigError(
                _unknown_key_message(
                    key, "lr_schedule", ("name", "arguments", "warmup", "warmup_init")
                )
            )
    name = schedule.get("name")
    if name not in SCHEDULE_NAMES:
        raise ConfigError(f"name '{name}' is not one of {', '.join(SCHEDULE_NAMES)}", "lr_schedule")
    args = schedule.get("arguments")
    if args is None and name in ("cosine_decay", "linear_schedule"):
        return  # filled in from learning_rate and the run length (the dashboard's choice)
    if not isinstance(args, list | tuple) or not args:
        raise ConfigError("arguments: give a list, e.g. [1e-5, 1000] for cosine_decay", "lr_schedule")
    wanted = {"cosine_decay": (2, 3), "linear_schedule": (3, 3), "exponential_decay": (2, 2), "step_decay": (3, 3)}[name]
    numbers = all(isinstance(a, int | float) and not isinstance(a, bool) and math.isfinite(a) for a in args)
    if not numbers or not wanted[0] <= len(args) <= wanted[1]:
        raise ConfigError(
            f"arguments: {name} takes {wanted[0]}{'' if wanted[0] == wanted[1] else f' or {wanted[1]}'} numbers "
            "(e.g. [1e-5, 1000] for cosine_decay, [1e-5, 0.0, 1000] for linear_schedule)",
            "lr_schedule",
        )
    for key in ("warmup", "warmup_init"):
        value = schedule.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise ConfigError(f"{key}: must be a number of at least 0", "lr_schedule")


def build_lr_schedule(config: TrainConfig, total_iters: int) -> Any:
    """A float or an mlx.optimizers schedule (a callable of the step)."""
    import mlx.optimizers as optim

    if config.lr_phases:
        phases = parse_phases(config.lr_phases)
        pieces = [optim.linear_schedule(lr, lr, n) for n, lr in phases]
        # the last value holds after the last phase
        pieces.append(optim.linear_schedule(phases[-1][1], phases[-1][1], 1))
        bounds, acc = [], 0
        for n, _ in phases:
            acc += n
            bounds.append(acc)
        return optim.join_schedules(pieces, bounds)
    schedule = materialized_schedule(config, total_iters)
    if schedule:
        from mlx_lm.tuner.utils import build_schedule

        return build_schedule(schedule)
    return config.learning_rate


def materialized_schedule(config: TrainConfig, total_iters: int) -> dict[str, Any] | None:
    """The mlx-lm `lr_schedule` this config means, with `--warmup` folded in.

    A bare `--warmup N` (the seeds' flag) is a linear warmup to a constant learning rate,
    which mlx-lm spells as a constant linear_schedule with `warmup`.
    """
    if config.lr_schedule:
        schedule = dict(config.lr_schedule)
        if schedule.get("arguments") is None:
            lr, n = config.learning_rate, max(1, total_iters - int(config.warmup or 0))
            schedule["arguments"] = [lr, n] if schedule["name"] == "cosine_decay" else [lr, 0.0, n]
        if config.warmup and not schedule.get("warmup"):
            schedule["warmup"] = config.warmup
        return schedule
    if config.warmup:
        lr = config.learning_rate
        return {
            "name": "linear_schedule",
            "arguments": [lr, lr, max(1, total_iters)],
            "warmup": config.warmup,
            "warmup_init": 0.0,
        }
    return None


def _py_schedule(name: str, args: list[Any]) -> Any:
    """Pure-Python twins of mlx.optimizers' schedules, so a preview needs no MLX call
    (every MLX call belongs on the engine thread)."""
    if name == "linear_schedule":
        init, end, steps = float(args[0]), float(args[1]), int(args[2])
        return lambda step: min(step, steps) * ((end - init) / steps) + init
    if name == "cosine_decay":
        init, decay = float(args[0]), int(args[1])
        end = float(args[2]) if len(args) > 2 else 0.0
        return lambda step: end + 0.5 * (1.0 + math.cos(math.pi / decay * min(step, decay))) * (init - end)
    if name == "exponential_decay":
        init, rate = float(args[0]), float(args[1])
        return lambda step: init * rate**step
    if name == "step_decay":
        init, rate, size = float(args[0]), float(args[1]), int(args[2])
        return lambda step: init * rate ** (step // size)
    raise ConfigError(f"name '{name}' is not one of {', '.join(SCHEDULE_NAMES)}", "lr_schedule")


def _py_join(pieces: list[Any], bounds: list[int]) -> Any:
    def schedule(step: int) -> float:
        out = pieces[0](step)
        for bound, piece in zip(bounds, pieces[1:], strict=True):
            if step >= bound:
                out = piece(step - bound)
        return float(out)

    return schedule


def lr_function(config: TrainConfig, total_iters: int) -> Any:
    """The learning rate as a function of the optimizer step, exactly as build_lr_schedule."""
    if config.lr_phases:
        phases = parse_phases(config.lr_phases)
        pieces = [_py_schedule("linear_schedule", [lr, lr, n]) for n, lr in phases]
        pieces.append(_py_schedule("linear_schedule", [phases[-1][1], phases[-1][1], 1]))
        bounds, acc = [], 0
        for n, _ in phases:
            acc += n
            bounds.append(acc)
        return _py_join(pieces, bounds)
    schedule = materialized_schedule(config, total_iters)
    if not schedule:
        return lambda step: float(config.learning_rate)
    main = _py_schedule(schedule["name"], list(schedule["arguments"]))
    warmup = int(schedule.get("warmup", 0) or 0)
    if not warmup:
        return main
    ramp = _py_schedule("linear_schedule", [float(schedule.get("warmup_init", 0.0)), float(schedule["arguments"][0]), warmup])
    return _py_join([ramp, main], [warmup + 1])


def schedule_preview(config: TrainConfig, total_iters: int, points: int = 200) -> list[tuple[int, float]]:
    """(iteration, learning rate) pairs over the whole run, for the preview plot (no MLX)."""
    if total_iters <= 0:
        return []
    fn = lr_function(config, total_iters)
    step = max(1, total_iters // points)
    its = list(range(0, total_iters, step))
    if its[-1] != total_iters - 1:
        its.append(total_iters - 1)
    return [(i + 1, float(fn(i))) for i in its]


_SIZE_RE = re.compile(r"^\s*([0-9.]+)\s*([KMGT]?B?|[KMGT]i?B)?\s*$", re.I)


def parse_size(value: Any, name: str = "size") -> int:
    """'8GB', '512MB', '1.5G', 1073741824 -> bytes."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    m = _SIZE_RE.match(str(value))
    if not m:
        raise ConfigError(f"'{value}' is not a size (write e.g. 8GB, 512MB or a number of bytes)", name)
    unit = (m.group(2) or "").upper().rstrip("B").rstrip("I")
    mult = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[unit]
    return int(float(m.group(1)) * mult)


def _unknown_key_message(key: str, where: str, known: tuple[str, ...] = FIELD_NAMES) -> str:
    import difflib  # only when a key is wrong: not on every start

    near = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    hint = f"; did you mean '{near[0]}'?" if near else f"; known keys: {', '.join(known)}"
    return f"unknown key '{key}' in {where}{hint}"


# ---------------------------------------------------------------- the settings table


@dataclass(frozen=True)
class FieldSpec:
    """One setting, declared once: the form, the command line, YAML and validation read it.

    `name` is a TrainConfig field, or a view on part of a nested one (`lora_rank` is
    lora_parameters.rank): `field` says which TrainConfig field it writes, `yaml` its YAML key
    (dotted inside a mapping). `label` is the Config form's; an empty label keeps it out of
    the form and `not_in_form` says why. `flags` are the command-line flags, mlx_lm.lora's
    names first (`dest` when the argparse name differs); an empty tuple needs `no_flag`.
    """

    name: str
    label: str
    kind: str  # "int" | "float" | "str" | "bool" | "choice" | "optional_str" | "optional_int" | "optional_float" | "mapping"
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    flags: tuple[str, ...] = ()
    dest: str = ""
    field: str = ""
    yaml: str = ""
    not_in_form: str = ""
    no_flag: str = ""

    @property
    def config_field(self) -> str:
        return self.field or self.name

    @property
    def yaml_key(self) -> str:
        return self.yaml or self.config_field

    @property
    def flag_dest(self) -> str:
        return self.dest or self.name


_S = FieldSpec
_LORA = "lora_parameters"
_NOT_A_FLAG = "a mapping: set it in YAML, or through the flags of its parts"
# fmt: off
SETTINGS: tuple[FieldSpec, ...] = (
    _S("model", "Model", "optional_str", "local MLX folder, .gguf file, Hugging Face id, or empty for the demo model", flags=("--model",)),
    _S("data", "Data folder", "optional_str", "folder with train.jsonl/valid.jsonl/test.jsonl, or empty for the demo dataset", flags=("--data",)),
    _S("train", "", "bool", "train (the default of `mlxtui train`; accepted for mlx_lm.lora compatibility)", flags=("--train",), not_in_form="the dashboard trains when you press t"),
    _S("fine_tune_type", "Method", "choice", "lora, dora or full (QLoRA = LoRA on a quantized base)", FINE_TUNE_TYPES, flags=("--fine-tune-type",)),
    _S("dequantize", "Dequantize base", "choice", "train a float copy of a quantized base: auto = yes on the CPU back-end (about 20x faster there)", DEQUANTIZE_CHOICES, flags=("--dequantize",)),
    _S("optimizer", "Optimizer", "choice", "adam, adamw, muon, sgd or adafactor", OPTIMIZERS, flags=("--optimizer",)),
    _S("optimizer_options", "Optimizer options", "optional_str", "optimizer_config for this optimizer: KEY=VALUE,... e.g. weight_decay=0.01,betas=0.9 0.98", flags=("--optimizer-options",), field="optimizer_config", yaml="optimizer_config.<optimizer>"),
    _S("optimizer_config", "", "mapping", "per-optimizer options, e.g. {adamw: {weight_decay: 0.01}}", not_in_form="edited as Optimizer options (the chosen optimizer's part)", no_flag=_NOT_A_FLAG),
    _S("batch_size", "Batch size", "int", "examples per step", minimum=1, maximum=4096, flags=("--batch-size",)),
    _S("iters", "Iterations", "int", "optimizer steps (ignored when epochs is set)", minimum=1, flags=("--iters",)),
    _S("epochs", "Epochs", "optional_int", "passes over the training set: iterations = ceil(epochs x examples / batch)", minimum=1, flags=("--epochs",)),
    _S("learning_rate", "Learning rate", "float", "Adam step size", minimum=0.0, maximum=1.0, flags=("--learning-rate",)),
    _S("lr_schedule_name", "LR schedule", "choice", "constant, cosine_decay (to 0 over the run), linear_decay, or phases ITERS:LR,... (e.g. 400:2e-5,400:1e-5,200:2e-6, as --lr-phases); a YAML lr_schedule mapping gives full control", SCHEDULE_CHOICES, flags=("--lr-schedule",), field="lr_schedule", yaml="lr_schedule.name"),
    _S("lr_schedule", "", "mapping", "mlx-lm's schedule: {name, arguments, warmup, warmup_init}", not_in_form="edited as LR schedule and Warmup steps", no_flag=_NOT_A_FLAG),
    _S("warmup", "Warmup steps", "int", "linear warmup from 0 to the learning rate", minimum=0, flags=("--warmup",)),
    _S("lr_phases", "LR phases", "optional_str", "ITERS:LR,... e.g. 400:2e-5,400:1e-5,200:2e-6 (overrides the schedule)", flags=("--lr-phases",)),
    _S("num_layers", "Layers to tune", "int", "last N transformer blocks; -1 = all", minimum=-1, flags=("--num-layers", "--lora-layers")),
    _S("lora_rank", "LoRA rank", "int", "rank r of the adapter matrices", minimum=1, maximum=1024, flags=("--lora-rank",), field=_LORA, yaml="lora_parameters.rank"),
    _S("lora_scale", "LoRA scale", "float", "mlx-lm's scale; PEFT's alpha = scale x rank", minimum=0.0, flags=("--lora-scale",), field=_LORA, yaml="lora_parameters.scale"),
    _S("lora_alpha", "", "float", "PEFT-style alpha: mlx-lm's scale = alpha / rank", minimum=0.0, flags=("--lora-alpha",), field=_LORA, yaml="lora_parameters.alpha", not_in_form="the form sets LoRA scale and shows the alpha it means next to it"),
    _S("lora_dropout", "LoRA dropout", "float", "dropout on the adapter input", minimum=0.0, maximum=0.99, flags=("--lora-dropout",), field=_LORA, yaml="lora_parameters.dropout"),
    _S("lora_keys", "LoRA keys", "optional_str", "comma-separated modules, e.g. self_attn.q_proj,self_attn.v_proj; empty = mlx-lm's default", flags=("--lora-keys",), field=_LORA, yaml="lora_parameters.keys"),
    _S("lora_parameters", "", "mapping", "mlx-lm's LoRA parameters: {rank, scale, dropout, keys}", not_in_form="edited as LoRA rank, scale, dropout and keys", no_flag=_NOT_A_FLAG),
    _S("grad_checkpoint", "Grad checkpointing", "bool", "recompute activations: less memory, ~30% slower", flags=("--grad-checkpoint",)),
    _S("grad_accumulation_steps", "Grad accumulation", "int", "steps per optimizer update", minimum=1, flags=("--grad-accumulation-steps",)),
    _S("pack", "Pack examples", "bool", "place whole examples into rows of max_seq_length tokens (no padding, one shape; on the CPU rows as short as pays for the data, see benchmarks/README.md); each step is batch_size such rows", flags=("--pack",)),
    _S("mask_prompt", "Mask prompt", "bool", "train only on the completion / last assistant turn", flags=("--mask-prompt",)),
    _S("prompt_feature", "Prompt key", "optional_str", "completions data: the prompt's key (default prompt)", flags=("--prompt-feature",)),
    _S("completion_feature", "Completion key", "optional_str", "completions data: the completion's key (default completion)", flags=("--completion-feature",)),
    _S("chat_feature", "Chat key", "optional_str", "chat data: the messages' key (default messages)", flags=("--chat-feature",)),
    _S("text_feature", "Text key", "optional_str", "text data: the text's key (default text)", flags=("--text-feature",)),
    _S("hf_dataset", "", "mapping", "datasets on the Hugging Face hub, loaded by mlx-lm's loader: {path, train_split, valid_split, test_split, config, *_feature} or a list of them (needs the datasets package)", not_in_form="a mapping for datasets on the hub; set it in YAML", no_flag="a mapping read by mlx-lm's hub loader; set it in YAML, as with mlx_lm.lora"),
    _S("train_data", "", "optional_str", "the training set as a JSONL file (instead of a data folder); valid.jsonl/test.jsonl beside a train.jsonl are used unless --valid-data/--test-data name others", flags=("--train-data",), not_in_form="the form takes a data folder"),
    _S("valid_data", "", "optional_str", "the validation set as a JSONL file (with --train-data)", flags=("--valid-data",), not_in_form="the form takes a data folder"),
    _S("test_data", "", "optional_str", "the test set as a JSONL file (with --train-data, or alone with --test)", flags=("--test-data",), not_in_form="the form takes a data folder"),
    _S("steps_per_report", "Steps per report", "int", "training loss reported every N steps", minimum=1, flags=("--steps-per-report",)),
    _S("steps_per_eval", "Steps per eval", "int", "validation loss every N steps", minimum=1, flags=("--steps-per-eval",)),
    _S("save_every", "Save every", "int", "checkpoint every N steps", minimum=1, flags=("--save-every",)),
    _S("val_batches", "Validation batches", "int", "-1 = the whole validation set", minimum=-1, flags=("--val-batches",)),
    _S("max_seq_length", "Max sequence length", "int", "longer examples are truncated", minimum=8, flags=("--max-seq-length",)),
    _S("sample_prompts", "Sample prompts", "int", "held-out prompts answered at each evaluation (0 = off)", minimum=0, maximum=16, flags=("--sample-prompts",)),
    _S("test", "Test after training", "bool", "evaluate test.jsonl: loss and perplexity", flags=("--test",)),
    _S("test_batches", "Test batches", "int", "-1 = the whole test set", minimum=-1, flags=("--test-batches",)),
    _S("seed", "Seed", "int", "random seed (data order, init, dropout)", minimum=0, flags=("--seed",)),
    _S("trust_remote_code", "Trust remote code", "bool", "let a Hugging Face model's own tokenizer code run", flags=("--trust-remote-code",)),
    _S("early_stopping_patience", "Early stop patience", "int", "evaluations without improvement before stopping; 0 = off", minimum=0, flags=("--early-stopping-patience",)),
    _S("early_stopping_min_delta", "Early stop min delta", "float", "smallest val-loss drop that counts as improvement", minimum=0.0, flags=("--early-stopping-min-delta",)),
    _S("max_grad_norm", "Max grad norm", "optional_float", "clip the gradient's global norm to this (> 0); empty = no clipping", minimum=0.0, flags=("--max-grad-norm",)),
    _S("resume_adapter_file", "Resume adapter file", "optional_str", "start from these adapter weights (.safetensors)", flags=("--resume-adapter-file",)),
    _S("adapter_path", "Adapter folder", "str", "each checkpoint is also written here as soon as it is saved, under mlx-lm's names (runs/<run>/adapters always has them)", flags=("--adapter-path",)),
    _S("run_name", "Run name", "optional_str", "runs/<timestamp>-<name>; empty = the model's name", flags=("--run-name",)),
    _S("runs_dir", "Runs folder", "str", "where run folders are created", flags=("--runs-dir",)),
    _S("resume_run", "", "optional_str", "continue a run folder exactly where it stopped", flags=("--resume",), not_in_form="the Runs screen resumes a run"),
    _S("memory_guard", "Memory guard", "choice", "when swap grows or pressure turns red: pause, warn, or off", MEMORY_GUARD_POLICIES, flags=("--memory-guard",)),
    _S("swap_growth_mb_per_min", "Swap growth limit", "float", "MB per minute of swap growth that trips the guard", minimum=1.0, flags=("--swap-growth-mb-per-min",)),
    _S("memory_limit", "MLX memory limit", "optional_str", "mx.set_memory_limit, e.g. 12GB; empty = MLX default", flags=("--memory-limit",)),
    _S("cache_limit", "MLX cache limit", "optional_str", "mx.set_cache_limit, e.g. 2GB; empty = MLX default", flags=("--cache-limit",)),
    _S("clear_cache_threshold", "Clear-cache threshold", "str", "clear MLX's cache between steps above this size, e.g. 1GB; 0 = never", flags=("--clear-cache-threshold",)),
    _S("report_to", "", "optional_str", "also report losses to wandb or swanlab (comma-separated) through mlx-lm's callbacks; needs that package installed", flags=("--report-to",), not_in_form="mlx_lm.lora's wandb/swanlab switch; set it on the command line or in YAML"),
    _S("project_name", "", "optional_str", "the wandb/swanlab project to report to (with --report-to)", flags=("--project-name",), not_in_form="the wandb/swanlab project; set it with report_to"),
    _S("nproc", "", "int", "train as N processes on this machine through mlx.launch (mx.distributed); batch_size is each process's, so a step takes batch_size x N examples", minimum=1, maximum=1024, flags=("--nproc",), not_in_form="ranks are launched by `mlxtui train --nproc/--hosts`; the Config pane shows the effective batch"),
    _S("hosts", "", "optional_str", "mlx.launch's JSON host file: one rank per listed host (over SSH); batch_size is each rank's", flags=("--hosts",), not_in_form="ranks are launched by `mlxtui train --nproc/--hosts`; the Config pane shows the effective batch"),
    _S("backend", "", "choice", "mx.distributed back-end for --nproc/--hosts: any (NCCL on CUDA, else ring), ring, mpi or nccl", ("any", "ring", "mpi", "nccl"), flags=("--backend",), not_in_form="chosen with --nproc/--hosts on the command line"),
    _S("rank_timeout", "", "float", "seconds without a report from any rank before every rank is stopped (a rank that hangs or a host that vanished); 0 = wait forever", minimum=0.0, flags=("--rank-timeout",), not_in_form="chosen with --nproc/--hosts on the command line"),
)
# fmt: on
FORM_FIELDS: tuple[FieldSpec, ...] = tuple(s for s in SETTINGS if s.label)
FORM_FIELD_NAMES = tuple(s.name for s in FORM_FIELDS)
SETTING_NAMES = tuple(s.name for s in SETTINGS)
_BY_NAME = {s.name: s for s in SETTINGS}
_LORA_FORM_KEYS = {
    s.name: s.yaml_key.split(".", 1)[1] for s in SETTINGS if s.yaml_key.startswith(_LORA + ".")
}


def setting(name: str) -> FieldSpec:
    """The table row of a setting (a TrainConfig field or a view such as lora_rank)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigError(_unknown_key_message(name, "the settings", SETTING_NAMES)) from None


def field_label(name: str) -> str:
    """The words a person sees for a setting in the form ("Batch size"), for errors.

    A setting outside the form is named by its YAML key; an unknown name is returned as it is.
    """
    spec = _BY_NAME.get(name)
    if spec is None:
        return name
    return spec.label or spec.yaml_key


def flag_for(name: str) -> str | None:
    """The command-line flag of a setting (mlx_lm.lora's name), or None when it has none."""
    spec = _BY_NAME.get(name)
    return spec.flags[0] if spec is not None and spec.flags else None


def get_field(config: TrainConfig, name: str) -> Any:
    """A setting's value; a few settings are views on nested mlx-lm keys."""
    if name == "lora_alpha":
        return config.lora_alpha
    if name == "lora_keys":
        keys = config.lora_parameters.get("keys")
        return ",".join(keys) if keys else None
    if name in _LORA_FORM_KEYS:
        key = _LORA_FORM_KEYS[name]
        return config.lora_parameters.get(key, DEFAULT_LORA_PARAMETERS[key])
    if name == "lr_schedule_name":
        sched = config.lr_schedule or {}
        name_ = sched.get("name", "constant")
        return "linear_decay" if name_ == "linear_schedule" else name_
    if name == "clear_cache_threshold":
        return str(config.clear_cache_threshold)
    if name == "optimizer_options":
        return format_options(config.optimizer_config.get(config.optimizer) or {})
    return getattr(config, name)


def set_field(config: TrainConfig, name: str, value: Any) -> TrainConfig:
    """The config with one setting changed (the value as validate_field returns it)."""
    return from_settings({name: value}, base=config, where="", validate=False)


def settings_to_dict(values: dict[str, Any], base: TrainConfig) -> dict[str, Any]:
    """Settings by name (views included) -> the TrainConfig keys `from_dict` takes.

    Views on one nested key are merged together over `base`'s value: `--lora-rank 16
    --lora-alpha 32` gives lora_parameters with rank 16 and alpha 32 (from_dict turns alpha
    into scale = alpha / rank with the new rank).
    """
    out: dict[str, Any] = {}
    lora: dict[str, Any] | None = None
    for name, value in values.items():
        if name in _LORA_FORM_KEYS:
            if lora is None:
                lora = dict(base.lora_parameters)
                lora.pop("alpha", None)
            key = _LORA_FORM_KEYS[name]
            if key == "keys":
                keys = [k.strip() for k in str(value or "").split(",") if k.strip()]
                if keys:
                    lora["keys"] = keys
                else:
                    lora.pop("keys", None)
            else:
                lora[key] = value
        elif name == "lr_schedule_name":
            if is_phases(value):
                out["lr_phases"] = value
                out["lr_schedule"] = None
            elif value in (None, "constant"):
                out["lr_schedule"] = None
            else:
                # arguments are filled in from the learning rate and the run length at training time
                out["lr_schedule"] = {"name": "linear_schedule" if value == "linear_decay" else value}
        elif name == "clear_cache_threshold":
            out[name] = parse_size(value, name) if value is not None else 0
        elif name == "optimizer_options":
            optimizer = values.get("optimizer", base.optimizer)
            oc = {k: dict(v or {}) for k, v in base.optimizer_config.items()}
            oc[optimizer] = parse_options(value or "")
            out["optimizer_config"] = oc
        else:
            out[name] = value
    if lora is not None:
        out[_LORA] = lora
    return out


def from_settings(
    values: dict[str, Any], base: TrainConfig, where: str = "the settings", validate: bool = True
) -> TrainConfig:
    """Overlay settings by name (flags, form fields; views included) on `base`.

    Values are already parsed (argparse's types, `validate_field`); a nested key is replaced
    as a whole, so an emptied LoRA keys field removes `keys`.
    """
    if validate:
        # each setting by its own rule first: --lora-alpha -1 is refused as --lora-alpha, not as
        # the scale it would make
        for name, value in values.items():
            if value is not None and setting(name).kind != "mapping":
                _value, error = validate_field(name, value)
                if error:
                    raise ConfigError(error, name, where)
    try:
        changes = settings_to_dict(values, base)
    except ConfigError as e:
        raise e.at(where) from None
    lora = changes.get(_LORA)
    if lora is not None and "alpha" in lora:
        # PEFT-style alpha given: mlx-lm needs scale = alpha / rank
        lora = dict(lora)
        lora["scale"] = float(lora.pop("alpha")) / float(lora.get("rank", DEFAULT_LORA_PARAMETERS["rank"]))
        changes[_LORA] = lora
    cfg = base.with_values(**changes)
    if validate:
        try:
            cfg.validate()
        except ConfigError as e:
            raise e.at(where) from None
    return cfg


def parse_options(text: str) -> dict[str, Any]:
    """`weight_decay=0.01,betas=0.9 0.98` -> {"weight_decay": 0.01, "betas": [0.9, 0.98]}."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = part.partition("=")
        if not sep or not key.strip() or not raw.strip():
            raise ConfigError(f"'{part}' is not KEY=VALUE (e.g. weight_decay=0.01)", "optimizer_options")
        values = []
        for tok in raw.split():
            try:
                values.append(float(tok))
            except ValueError:
                low = tok.lower()
                if low not in ("true", "false"):
                    raise ConfigError(f"{key.strip()}={raw.strip()} is not a number", "optimizer_options") from None
                values.append(low == "true")
        out[key.strip()] = values[0] if len(values) == 1 else values
    return out


def format_options(options: dict[str, Any]) -> str | None:
    if not options:
        return None
    parts = []
    for k, v in options.items():
        text = " ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v) if isinstance(v, list | tuple) else (f"{v:g}" if isinstance(v, float) else str(v))
        parts.append(f"{k}={text}")
    return ",".join(parts)


def validate_field(name: str, raw: Any) -> tuple[Any, str | None]:
    """Parse a form value: (value, None) when good, (None, reason) when refused."""
    spec = setting(name)
    if spec.kind == "mapping":
        return raw, None  # checked as a whole by TrainConfig.validate
    text = raw.strip() if isinstance(raw, str) else raw
    try:
        if spec.kind in ("optional_str", "optional_int", "optional_float") and (text is None or text == ""):
            return None, None
        if spec.kind in ("str", "optional_str"):
            if isinstance(text, int | float | PurePath) and not isinstance(text, bool):
                text = str(text)  # the Python API may give a Path for a folder
            if not isinstance(text, str):
                return None, f"must be text, not {type(text).__name__}"
            if spec.kind == "str" and not text:
                return None, "must not be empty"
            if name in ("memory_limit", "cache_limit", "clear_cache_threshold"):
                parse_size(text, name)
            if name == "lr_phases":
                parse_phases(text)
            if name == "report_to":
                for item in (i.strip().lower() for i in text.split(",")):
                    if item not in REPORTERS:
                        return None, f"'{item}' is not one of {', '.join(REPORTERS)} (mlx-lm's reporters)"
            if name == "optimizer_options":
                parse_options(text)
            return text, None
        if spec.kind == "bool":
            if isinstance(text, bool):
                return text, None
            if str(text).lower() in ("true", "yes", "on", "1"):
                return True, None
            if str(text).lower() in ("false", "no", "off", "0"):
                return False, None
            return None, "must be true or false"
        if spec.kind == "choice":
            if name == "lr_schedule_name" and is_phases(text):
                parse_phases(text)  # the seeds' --lr-schedule "400:2e-5,400:1e-5": phases
                return text, None
            if text not in spec.choices:
                return None, f"must be one of {', '.join(spec.choices)}"
            return text, None
        if spec.kind in ("int", "optional_int"):
            if isinstance(text, bool):
                return None, "must be a whole number"
            if isinstance(text, float) and not text.is_integer():
                return None, "must be a whole number"
            value: Any = int(text) if not isinstance(text, str) else int(text.replace("_", ""))
        else:
            if isinstance(text, bool):
                return None, "must be a number"
            value = float(text)
            if not math.isfinite(value):
                return None, "must be a finite number"
    except ConfigError as e:
        return None, e.message
    except (TypeError, ValueError):
        kind = "a whole number" if spec.kind in ("int", "optional_int") else "a number"
        return None, f"'{raw}' is not {kind}"
    if name == "num_layers" and value == 0:
        return None, "0 layers trains nothing: give N > 0, or -1 for all"
    if name == "max_grad_norm" and value <= 0:
        return None, "must be above 0 (leave it empty for no clipping)"
    low, high = spec.minimum, spec.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            return None, f"must be from {low:g} to {high:g}"
        return None, f"must be at least {low:g}" if low is not None else f"must be at most {high:g}"
    return value, None


# ---------------------------------------------------------------- loading YAML


@functools.cache
def _mlx_lm_loader() -> Any:
    """mlx-lm's YAML loader: it reads 1e-5 (no dot) as a float, plain YAML reads a string.

    Built on first use: importing YAML would slow every `mlxtui --help`.
    """
    import yaml

    class MlxLmLoader(yaml.SafeLoader):
        pass

    MlxLmLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"""^(?:
         [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
            re.X,
        ),
        list("-+0123456789."),
    )
    return MlxLmLoader


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file; errors name the file (and line) and the fix."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file (give the path of a YAML file, e.g. run.yaml)")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not a UTF-8 text file (byte {e.start + 1} is not UTF-8); save it as UTF-8") from None
    try:
        data = yaml.load(text, Loader=_mlx_lm_loader())
    except yaml.reader.ReaderError as e:
        # a control character the YAML reader refuses: it gives a position, not a line
        line = text.count("\n", 0, e.position) + 1
        raise ConfigError(
            f"{p}:{line}: invalid YAML: character {e.character!r} is not allowed in YAML (delete it)"
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else f"{p}:1"
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{where}: invalid YAML: {problem} (fix the syntax there)") from None
    except RecursionError:
        raise ConfigError(f"{p}:1: invalid YAML: nested too deeply (a config is a flat mapping)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{p}: the top level must be a mapping of option: value, not {type(data).__name__}"
        )
    return data


def from_dict(
    values: dict[str, Any], base: TrainConfig | None = None, where: str = "config"
) -> TrainConfig:
    """Overlay a dict (YAML or flags) on `base`; unknown keys are an error naming the nearest one."""
    try:
        return _from_dict(values, base, where)
    except ConfigError as e:
        raise e.at(where) from None  # every refusal names the file it came from


def _from_dict(values: dict[str, Any], base: TrainConfig | None, where: str) -> TrainConfig:
    base = base or TrainConfig()
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key in MLX_LM_ONLY_KEYS:
            continue
        if key not in FIELD_NAMES:
            raise ConfigError(_unknown_key_message(str(key), where))
        spec = _BY_NAME.get(key)
        if spec is not None and spec.kind not in ("mapping", "choice", "str") and value is not None:
            # YAML gives `train: "no"` or `batch_size: 3.0`: keep what the value means, not its spelling
            value, error = validate_field(key, value)
            if error:
                raise ConfigError(error, key, where)
        changes[key] = value
    schedule = changes.get("lr_schedule")
    if isinstance(schedule, str):
        # the seeds write phases where mlx-lm's YAML has a mapping; a bare name is the form's choice
        try:
            changes.update(settings_to_dict({"lr_schedule_name": _checked("lr_schedule_name", schedule)}, base))
        except ConfigError as e:
            raise e.at(where) from None
    if "lora_parameters" in changes:
        lp = dict(base.lora_parameters)
        given = changes["lora_parameters"] or {}
        if not isinstance(given, dict):
            raise ConfigError("must be a mapping (rank, scale, dropout, keys)", "lora_parameters", where)
        try:
            check_nested(given, {})
        except ConfigError as e:
            raise e.at(where) from None
        lp.update(given)
        if "alpha" in lp:
            # PEFT-style alpha given: mlx-lm needs scale = alpha / rank.
            lp["scale"] = float(lp.pop("alpha")) / float(
                lp.get("rank", DEFAULT_LORA_PARAMETERS["rank"])
            )
        changes["lora_parameters"] = lp
    if "optimizer_config" in changes:
        oc = _default_optimizer_config()
        try:
            check_nested({}, changes["optimizer_config"] or {})
        except ConfigError as e:
            raise e.at(where) from None
        oc.update(changes["optimizer_config"] or {})
        changes["optimizer_config"] = oc
    for key in ("learning_rate", "early_stopping_min_delta", "swap_growth_mb_per_min", "max_grad_norm"):
        if key in changes and isinstance(changes[key], str):
            try:
                changes[key] = float(changes[key])
            except ValueError:
                raise ConfigError(f"'{changes[key]}' is not a number", key, where) from None
    if "clear_cache_threshold" in changes and isinstance(changes["clear_cache_threshold"], str):
        changes["clear_cache_threshold"] = parse_size(
            changes["clear_cache_threshold"], "clear_cache_threshold"
        )
    for key in ("model", "data", "adapter_path", "resume_adapter_file"):
        if key in changes and changes[key] is not None:
            changes[key] = str(changes[key])
    cfg = dataclasses.replace(base, **changes)
    try:
        cfg.validate()
    except ConfigError as e:
        raise e.at(where) from None
    return cfg


def check_nested(lora_parameters: Any, optimizer_config: Any) -> None:
    """The nested mappings hold what mlx-lm reads: numbers where it computes, a list of keys.

    Checked before anything computes with them (alpha / rank, the form's views), so a YAML
    `lora_parameters: {rank: ''}` is an error naming lora_parameters.rank, not a traceback.
    """
    if not isinstance(lora_parameters, dict):
        raise ConfigError("must be a mapping (rank, scale, dropout, keys)", "lora_parameters")
    for key, view in (("rank", "lora_rank"), ("scale", "lora_scale"), ("alpha", "lora_alpha"), ("dropout", "lora_dropout")):
        if key in lora_parameters:
            _value, error = validate_field(view, lora_parameters[key])
            if error:
                raise ConfigError(error, view)
    keys = lora_parameters.get("keys")
    if keys is not None and not (isinstance(keys, list | tuple) and all(isinstance(k, str) and k for k in keys)):
        raise ConfigError(
            "must be a list of module names, e.g. [self_attn.q_proj, self_attn.v_proj]", "lora_parameters.keys"
        )
    if not isinstance(optimizer_config, dict):
        raise ConfigError("must be a mapping of optimizer: options, e.g. {adamw: {weight_decay: 0.01}}", "optimizer_config")
    for name, options in optimizer_config.items():
        if name not in OPTIMIZERS:
            raise ConfigError(_unknown_key_message(str(name), "optimizer_config", OPTIMIZERS))
        if options is not None and not isinstance(options, dict):
            raise ConfigError(
                f"must be a mapping of option: value, e.g. {{weight_decay: 0.01}}, not {type(options).__name__}",
                f"optimizer_config.{name}",
            )


def _checked(name: str, raw: Any) -> Any:
    value, error = validate_field(name, raw)
    if error:
        raise ConfigError(error, setting(name).config_field)
    return value


def load_config(path: str | Path, base: TrainConfig | None = None) -> TrainConfig:
    return from_dict(load_yaml(path), base=base, where=str(path))


def save_config(config: TrainConfig, path: str | Path) -> None:
    from mlxtui.core.fileio import atomic_write_text

    atomic_write_text(Path(path), config.to_yaml())


# ---------------------------------------------------------------- suggestions


def suggestions(
    config: TrainConfig,
    quantization_bits: int | None = None,
    n_train: int | None = None,
    num_parameters: int | None = None,
) -> dict[str, str]:
    """Hints shown next to fields: never applied silently.

    quantization_bits are those of the base as stored (a dequantized 4-bit base is 4-bit).
    """
    out: dict[str, str] = {}
    if config.fine_tune_type == "full":
        lr_hint, lo, hi = "full fine-tune: try 1e-5 to 5e-5", 1e-5, 5e-5
    elif quantization_bits == 4:
        lr_hint, lo, hi = "4-bit base: try 2e-4", 1e-4, 3e-4
    elif quantization_bits == 8:
        lr_hint, lo, hi = "8-bit base: try 1e-4", 5e-5, 2e-4
    elif quantization_bits is None and config.model is not None:
        lr_hint, lo, hi = "full-precision base: try 5e-5 to 1e-4", 5e-5, 1e-4
    else:
        lr_hint, lo, hi = "", 0.0, 1.0
    if lr_hint and not (lo <= config.learning_rate <= hi):
        out["learning_rate"] = lr_hint
    if n_train is not None:
        epoch = math.ceil(n_train / config.batch_size)
        if n_train < 1000:
            it_hint, layers = f"<1k examples: 2-3 epochs ({2 * epoch}-{3 * epoch} iters)", 8
        elif n_train <= 10000:
            it_hint, layers = f"1k-10k examples: 1-2 epochs ({epoch}-{2 * epoch} iters)", 16
        else:
            it_hint, layers = f">10k examples: about 1 epoch ({epoch} iters)", -1
        out["iters"] = it_hint
        if config.num_layers != layers:
            out["num_layers"] = f"for this size try {layers if layers > 0 else 'all (-1)'} layers"
    if quantization_bits and num_parameters:
        quant_mb = num_parameters * (quantization_bits + 1) / 8 / 2**20  # + scales and biases
        float_mb = num_parameters * 4 / 2**20
        out["dequantize"] = (
            f"float32 copy: {float_mb:,.0f} MB vs {quant_mb:,.0f} MB at {quantization_bits}-bit "
            "(about 20x faster to train on CPU)"
        )
    out["lora_scale"] = (
        f"alpha = scale x rank = {config.lora_scale:g} x {config.lora_rank} = {config.lora_alpha:g}"
    )
    return out
