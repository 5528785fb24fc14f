"""Streaming chat, adapter on/off and adapter switching, on a model that is already loaded.

Everything here runs MLX and so belongs on the engine thread (the one-thread rule).

Switching adapters without reloading the base: LoRA/DoRA layers keep their base layer inside,
so loading another checkpoint of the same layer layout is a `load_weights` of the small adapter
tensors, and turning the adapter off is setting `scale` to 0 (a plain float in mlx-lm).
DoRA also rescales the output by a learned magnitude `m`, so "off" puts the base norm there.
Full fine-tunes replace the base weights: `load_adapter_file` keeps the base values it replaced
so "base" can be restored; a model fully trained in this process has no such copy (reload it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_FILE = "adapters.safetensors"
_ADAPTER_LEAVES = ("lora_a", "lora_b", "m")
# Attributes we hang on modules (plain Python values are not parameters in mlx.nn.Module).
_SAVED_SCALE = "_mlxtui_saved_scale"
_SAVED_M = "_mlxtui_saved_m"
_FULL_BASE = "_mlxtui_full_base"
_FULL_TUNED = "_mlxtui_full_tuned"


# ------------------------------------------------------------------ weights choice


@dataclass(frozen=True)
class WeightsChoice:
    """What the chat answers with: the base, the adapter in memory, or an adapter file."""

    kind: str  # "base" | "adapter" | "file"
    path: Path | None = None

    @classmethod
    def parse(cls, text: str | Path) -> WeightsChoice:
        """ "base", "adapter", or a path to a .safetensors file (or an adapter folder)."""
        s = str(text).strip()
        if s.lower() in ("base", "adapter"):
            return cls(s.lower())
        return cls("file", Path(s).expanduser())

    @property
    def label(self) -> str:
        if self.kind == "file" and self.path is not None:
            return (
                f"{self.path.parent.parent.name}/{self.path.name}"
                if self.path.is_file()
                else str(self.path)
            )
        return self.kind


BASE = WeightsChoice("base")
ADAPTER = WeightsChoice("adapter")


def select_weights(model: Any, choice: WeightsChoice | str) -> dict[str, Any] | None:
    """Make the model answer with `choice`; return the adapter config when a file was loaded.

    Raises ValueError when the file's layer layout differs from the one in memory (the engine
    then reloads the base and calls this again) and FileNotFoundError for a missing file.
    """
    if isinstance(choice, str):
        choice = WeightsChoice.parse(choice)
    if choice.kind == "base":
        set_adapter_enabled(model, False)
        return None
    if choice.kind == "adapter":
        if not has_adapter(model):
            raise ValueError("no adapter is loaded: train one or pick an adapter file first")
        set_adapter_enabled(model, True)
        return None
    if choice.path is None:
        raise ValueError("an adapter file choice needs a path")
    return load_adapter_file(model, choice.path)


# ------------------------------------------------------------------ chat


@dataclass(frozen=True)
class GenerationChunk:
    text: str  # the new piece of text (may be empty)
    prompt_tokens: int
    generation_tokens: int
    prompt_tps: float
    generation_tps: float
    peak_memory: float  # GB
    finish_reason: str | None  # None while streaming; "stop" | "length" | "stopped" at the end


def render_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of the conversation plus the assistant's generation prompt.

    A system message the template rejects (some templates have no system role) is folded
    into the first user turn; a tokenizer without a chat template gets plain "role: text" lines.
    """
    if not messages:
        raise ValueError("a chat needs at least one message")
    if getattr(tokenizer, "chat_template", None) is None and not getattr(
        tokenizer, "has_chat_template", True
    ):
        return _plain_prompt(tokenizer, messages)
    try:
        return list(
            tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        )
    except Exception:  # noqa: BLE001 - jinja raises its own TemplateError for "no system role"
        if messages[0].get("role") != "system":
            if getattr(tokenizer, "chat_template", None) is None:
                return _plain_prompt(tokenizer, messages)
            raise
    folded = fold_system(messages)
    return list(tokenizer.apply_chat_template(folded, add_generation_prompt=True, tokenize=True))


def raw_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """The prompt's own tokens without the chat template (mlx_lm.generate --ignore-chat-template):
    encoded with the tokenizer's special tokens (a BOS where the model has one), as mlx-lm does.

    Only one user message can go in raw: a system prompt or earlier turns exist only through
    the template, so they are refused rather than dropped.
    """
    if len(messages) != 1 or messages[0].get("role") != "user":
        raise ValueError(
            "without the chat template only the prompt itself can be sent: "
            "leave out the system prompt and earlier turns, or use the chat template"
        )
    return list(tokenizer.encode(messages[0]["content"], add_special_tokens=True))


def fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Put a leading system message in front of the first user turn."""
    if not messages or messages[0].get("role") != "system":
        return list(messages)
    system, rest = messages[0]["content"], [dict(m) for m in messages[1:]]
    for m in rest:
        if m.get("role") == "user":
            m["content"] = f"{system}\n\n{m['content']}"
            return rest
    return [{"role": "user", "content": system}, *rest]


def _plain_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
    return list(tokenizer.encode(text))


# the chat pane's and `mlxtui generate`'s bounds (mlx-lm takes any penalty >= 0; below 1 it
# favours repeats, above about 2 it garbles the answer)
REPETITION_PENALTY_RANGE = (1.0, 2.0)


def repetition_problem(
    penalty: float,
    context_size: int,
    names: tuple[str, str] = ("repetition_penalty", "repetition_context_size"),
) -> str | None:
    """What is wrong with a repetition setting, by the `names` the caller knows them by
    (a flag's, a field's); None when both are within their bounds."""
    lo, hi = REPETITION_PENALTY_RANGE
    if not lo <= penalty <= hi:
        return f"{names[0]} must be from {lo:g} (off) to {hi:g}, not {penalty:g}"
    if context_size < 1:
        return f"{names[1]} must be at least 1, not {context_size}"
    return None


def stream_reply(
    model: Any,
    tokenizer: Any,
    messages: list[dict[str, str]],
    *,
    temperature: float = 0.7,
    top_p: float = 0.95,
    max_tokens: int = 256,
    seed: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    min_p: float = 0.0,
    top_k: int = 0,
    ignore_chat_template: bool = False,
    repetition_penalty: float = 1.0,
    repetition_context_size: int = 20,
) -> Iterator[GenerationChunk]:
    """Stream the assistant's answer; the last chunk has a finish_reason.

    temperature 0 is greedy; top_p, min_p and top_k narrow the sampled tokens as mlx-lm's
    make_sampler does (top_k 0 and min_p 0: off). repetition_penalty (1: off) divides the
    positive logits (multiplies the negative ones) of the tokens among the last
    repetition_context_size, as mlx-lm's make_logits_processors does: an adapter trained
    briefly on little data tends to repeat itself. ignore_chat_template sends the one user
    message's text as it is (`raw_prompt`). `should_stop` is read before every token: when it
    turns true the stream ends at once with finish_reason "stopped".
    """
    import mlx.core as mx
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_logits_processors, make_sampler

    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, not {max_tokens}")
    if top_k < 0:
        raise ValueError(f"top_k must be 0 (off) or more, not {top_k}")
    if not 0.0 <= min_p <= 1.0:
        raise ValueError(f"min_p must be in [0, 1] (0: off), not {min_p}")
    problem = repetition_problem(repetition_penalty, repetition_context_size)
    if problem:
        raise ValueError(problem)
    if seed is not None:
        mx.random.seed(seed)
    model.eval()  # a model fresh from training may still have dropout on
    prompt = (raw_prompt if ignore_chat_template else render_prompt)(tokenizer, messages)
    sampler = make_sampler(temp=temperature, top_p=top_p, min_p=min_p, top_k=top_k)
    last = None
    if should_stop():
        yield GenerationChunk("", len(prompt), 0, 0.0, 0.0, mx.get_peak_memory() / 1e9, "stopped")
        return
    processors = (
        make_logits_processors(
            repetition_penalty=repetition_penalty, repetition_context_size=repetition_context_size
        )
        if repetition_penalty != 1.0
        else None
    )
    gen = stream_generate(
        model, tokenizer, prompt, max_tokens=max_tokens, sampler=sampler, logits_processors=processors
    )
    try:
        for r in gen:
            last = r
            chunk = GenerationChunk(
                text=r.text,
                prompt_tokens=int(r.prompt_tokens),
                generation_tokens=int(r.generation_tokens),
                prompt_tps=float(r.prompt_tps),
                generation_tps=float(r.generation_tps),
                peak_memory=float(r.peak_memory),
                finish_reason=r.finish_reason,
            )
            if r.finish_reason is None and should_stop():
                yield GenerationChunk(
                    chunk.text, chunk.prompt_tokens, chunk.generation_tokens, chunk.prompt_tps,
                    chunk.generation_tps, chunk.peak_memory, "stopped",
                )  # fmt: skip
                return
            yield chunk
    finally:
        gen.close()
    if last is None:  # mlx-lm yields nothing when the very first token is EOS
        yield GenerationChunk("", len(prompt), 0, 0.0, 0.0, mx.get_peak_memory() / 1e9, "stop")


def generate_reply(
    model: Any, tokenizer: Any, messages: list[dict[str, str]], **kwargs: Any
) -> tuple[str, GenerationChunk]:
    """The whole answer and the last chunk (its statistics), from `stream_reply`."""
    parts = []
    last = None
    for chunk in stream_reply(model, tokenizer, messages, **kwargs):
        parts.append(chunk.text)
        last = chunk
    assert last is not None  # stream_reply always ends with a finish_reason chunk
    return "".join(parts), last


# ------------------------------------------------------------------ adapter on/off


def _adapter_classes() -> tuple[type, ...]:
    from mlx_lm.tuner.dora import DoRAEmbedding, DoRALinear
    from mlx_lm.tuner.lora import LoRAEmbedding, LoRALinear, LoRASwitchLinear

    return (LoRALinear, DoRALinear, LoRAEmbedding, DoRAEmbedding, LoRASwitchLinear)


def adapter_modules(model: Any) -> list[tuple[str, Any]]:
    """(name, module) of every LoRA/DoRA layer in the model."""
    classes = _adapter_classes()
    return [(n, m) for n, m in model.named_modules() if isinstance(m, classes)]


def adapter_scales(model: Any) -> list[tuple[Any, float]]:
    """(module, scale when on) of every adapter layer, whether it is switched on or off now."""
    return [(m, float(getattr(m, _SAVED_SCALE, m.scale))) for _, m in adapter_modules(model)]


def has_adapter(model: Any) -> bool:
    return bool(adapter_modules(model)) or bool(getattr(model, _FULL_BASE, None))


def adapter_enabled(model: Any) -> bool:
    """True when an adapter is present and on."""
    mods = adapter_modules(model)
    if mods:
        return not hasattr(mods[0][1], _SAVED_SCALE)
    return bool(getattr(model, _FULL_BASE, None)) and not getattr(model, _FULL_TUNED, None)


def _base_norm(module: Any) -> Any:
    import mlx.core as mx

    if hasattr(module, "_dequantized_weight"):  # DoRALinear
        w = module._dequantized_weight()
    else:  # DoRAEmbedding
        w = module.embedding.weight
    return mx.linalg.norm(w.astype(mx.float32), axis=1).astype(module.m.dtype)


def set_adapter_enabled(model: Any, enabled: bool) -> int:
    """Switch every adapter layer on or off in place; return how many layers were switched.

    LoRA: scale 0 makes the layer its base. DoRA: scale 0 plus the base norm as magnitude.
    Full fine-tune loaded by `load_adapter_file`: swap the kept base tensors in and out.
    """
    import mlx.core as mx

    count = 0
    for _, m in adapter_modules(model):
        if not enabled and not hasattr(m, _SAVED_SCALE):
            setattr(m, _SAVED_SCALE, float(m.scale))
            m.scale = 0.0
            if "m" in m:  # DoRA
                object.__setattr__(m, _SAVED_M, m.m)
                m.m = _base_norm(m)
            count += 1
        elif enabled and hasattr(m, _SAVED_SCALE):
            m.scale = getattr(m, _SAVED_SCALE)
            delattr(m, _SAVED_SCALE)
            if hasattr(m, _SAVED_M):
                m.m = getattr(m, _SAVED_M)
                object.__delattr__(m, _SAVED_M)
            count += 1
    base = getattr(model, _FULL_BASE, None)
    if base:
        tuned = getattr(model, _FULL_TUNED, None)
        if not enabled and tuned is None:
            params = _flat_params(model)
            object.__setattr__(model, _FULL_TUNED, {k: params[k] for k in base})
            model.load_weights(list(base.items()), strict=False)
            count += len(base)
        elif enabled and tuned is not None:
            model.load_weights(list(tuned.items()), strict=False)
            object.__setattr__(model, _FULL_TUNED, None)
            count += len(base)
    mx.eval(model.parameters())
    return count


@contextmanager
def adapter_disabled(model: Any) -> Iterator[Any]:
    """`with adapter_disabled(model):` answers with the base; the previous state comes back after."""
    was_on = adapter_enabled(model)
    set_adapter_enabled(model, False)
    try:
        yield model
    finally:
        if was_on:
            set_adapter_enabled(model, True)


# ------------------------------------------------------------------ adapter files


def _flat_params(model: Any) -> dict[str, Any]:
    from mlx.utils import tree_flatten

    return dict(tree_flatten(model.parameters()))


def find_adapter_config(path: Path) -> Path:
    """adapter_config.json in the folder `path`, or next to the file `path`."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"no adapter at {path}: give a run's adapters/ folder (e.g. runs/<run>/adapters, "
            "see `mlxtui runs`) or one .safetensors file in it"
        )
    folder = path if path.is_dir() else path.parent
    cfg = folder / ADAPTER_CONFIG
    if not cfg.is_file():
        raise FileNotFoundError(
            f"{folder}: no {ADAPTER_CONFIG} next to the adapter weights; an mlxtui or mlx-lm "
            "adapter folder has one (copy it from the run's adapters/ folder)"
        )
    return cfg


def read_adapter_config(path: Path) -> dict[str, Any]:
    cfg_path = find_adapter_config(path)
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{cfg_path}: expected a JSON object")
    ftype = cfg.get("fine_tune_type", "lora")
    if ftype not in ("lora", "dora", "full"):
        raise ValueError(f"{cfg_path}: fine_tune_type {ftype!r} is not one of lora, dora, full")
    if ftype != "full":
        lp = cfg.get("lora_parameters")
        if not isinstance(lp, dict) or "rank" not in lp or "scale" not in lp:
            raise ValueError(f"{cfg_path}: lora_parameters needs rank and scale (mlx-lm format)")
        if "num_layers" not in cfg:
            raise ValueError(f"{cfg_path}: num_layers is missing")
    return cfg


def _layer_layout(model: Any) -> tuple[str | None, int | None, frozenset[int], frozenset[str]]:
    """(type, rank, indices of adapted blocks, adapted keys within a block) of the model now."""
    from mlx_lm.tuner.dora import DoRAEmbedding, DoRALinear

    classes = _adapter_classes()
    kinds: set[str] = set()
    ranks: set[int] = set()
    blocks: set[int] = set()
    keys: set[str] = set()
    for i, layer in enumerate(getattr(model, "layers", [])):
        mod: Any
        for name, mod in layer.named_modules():
            if isinstance(mod, classes):
                m: Any = mod
                kinds.add("dora" if isinstance(m, DoRALinear | DoRAEmbedding) else "lora")
                # lora_b is (r, out) except in LoRASwitchLinear, where it is (experts, out, r)
                b = m.lora_b
                ranks.add(int(b.shape[-1] if b.ndim == 3 else b.shape[0]))
                blocks.add(i)
                keys.add(name)
    kind = kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else None)
    rank = ranks.pop() if len(ranks) == 1 else (-1 if ranks else None)
    return kind, rank, frozenset(blocks), frozenset(keys)


def _expected_blocks(model: Any, num_layers: int) -> frozenset[int]:
    n = len(model.layers)
    k = n if num_layers < 0 else min(num_layers, n)
    return frozenset(range(n - k, n))


def ensure_adapter_layers(model: Any, adapter_config: dict[str, Any]) -> bool:
    """Add the LoRA/DoRA layers `adapter_config` describes unless the model has them already.

    Returns True when layers were added. Raises ValueError, saying what differs, when the model
    already has adapter layers of another layout: the base must be reloaded for that one.
    """
    from mlx_lm.tuner.utils import linear_to_lora_layers

    ftype = adapter_config.get("fine_tune_type", "lora")
    if ftype == "full":
        if adapter_modules(model):
            raise ValueError(
                "this is a full fine-tune but the model in memory has LoRA/DoRA layers: reload the base model"
            )
        return False
    params = dict(adapter_config["lora_parameters"])
    params.pop("alpha", None)
    params.setdefault("dropout", 0.0)
    num_layers = int(adapter_config["num_layers"])
    kind, rank, blocks, keys = _layer_layout(model)
    if kind is None:
        if getattr(model, _FULL_BASE, None):
            raise ValueError(
                "a full fine-tune is loaded in memory; reload the base model to use a LoRA/DoRA adapter"
            )
        if num_layers > len(model.layers):
            raise ValueError(
                f"num_layers: the adapter wants {num_layers} layers but the model has {len(model.layers)}; "
                "it was trained on another model"
            )
        linear_to_lora_layers(model, num_layers, params, use_dora=ftype == "dora")
        model.eval()
        return True
    want_blocks = _expected_blocks(model, num_layers)
    diffs = []
    if kind != ftype:
        diffs.append(f"type {ftype} (loaded: {kind})")
    if rank != int(params["rank"]):
        diffs.append(f"rank {params['rank']} (loaded: {rank})")
    if blocks != want_blocks:
        diffs.append(f"num_layers {num_layers} (loaded: {len(blocks)})")
    if params.get("keys") is not None and frozenset(params["keys"]) != keys:
        diffs.append(f"keys {sorted(params['keys'])} (loaded: {sorted(keys)})")
    if diffs:
        raise ValueError(
            "the adapter's layer layout differs from the one in memory: "
            + ", ".join(diffs)
            + "; reload the base model to switch to it"
        )
    return False


def load_adapter_file(model: Any, path: Path | str) -> dict[str, Any]:
    """Load adapter weights (a .safetensors file, or a folder's adapters.safetensors) in place.

    The layout comes from the adapter_config.json beside the file. Switching among checkpoints
    of runs with the same layout reloads only the adapter tensors. Returns the adapter config.
    """
    import mlx.core as mx

    path = Path(path).expanduser()
    file = path / ADAPTER_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no adapter weights at {file}")
    cfg = read_adapter_config(file)
    ftype = cfg.get("fine_tune_type", "lora")
    try:
        weights: dict[str, Any] = mx.load(str(file))  # type: ignore[assignment]  # a dict for .safetensors
    except Exception as e:  # noqa: BLE001 - mlx raises plain RuntimeError/ValueError on bad files
        raise ValueError(f"{file}: not a readable safetensors file ({e})") from None
    if ftype == "full":
        return _load_full(model, file, weights, cfg)
    ensure_adapter_layers(model, cfg)
    set_adapter_enabled(
        model, True
    )  # the saved scale/m of an "off" state belong to the old weights
    params = _flat_params(model)
    wanted = {
        k for k in params if k.rsplit(".", 1)[-1] in _ADAPTER_LEAVES and _is_adapter_param(model, k)
    }
    _check_tensors(file, weights, params, wanted, require_all=True)
    model.load_weights(list(weights.items()), strict=False)
    scale = float(cfg["lora_parameters"]["scale"])
    for _, m in adapter_modules(model):
        m.scale = scale
    mx.eval(model.parameters())
    return cfg


def _is_adapter_param(model: Any, key: str) -> bool:
    names = {n for n, _ in adapter_modules(model)}
    return key.rsplit(".", 1)[0] in names


def _check_tensors(
    file: Path,
    weights: dict[str, Any],
    params: dict[str, Any],
    allowed: set[str],
    require_all: bool,
) -> None:
    errors = []
    for name, w in weights.items():
        if name not in allowed:
            errors.append(f"{name}: not an adapter parameter of the model")
        elif tuple(w.shape) != tuple(params[name].shape):
            errors.append(
                f"{name}: shape {tuple(w.shape)}, the model has {tuple(params[name].shape)}"
            )
    if require_all:
        missing = sorted(allowed - set(weights))
        if missing:
            errors.append(f"missing {len(missing)} adapter tensors, e.g. {missing[0]}")
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise ValueError(
            f"{file}: does not fit the model in memory: " + "; ".join(errors[:3]) + more
            + "; was it trained on another model or with other LoRA settings?"
        )  # fmt: skip


def _load_full(
    model: Any, file: Path, weights: dict[str, Any], cfg: dict[str, Any]
) -> dict[str, Any]:
    import mlx.core as mx

    if adapter_modules(model):
        raise ValueError(
            f"{file}: a full fine-tune, but the model in memory has LoRA layers; reload the base model"
        )
    set_adapter_enabled(model, True)
    params = _flat_params(model)
    _check_tensors(file, weights, params, set(params), require_all=False)
    base = getattr(model, _FULL_BASE, None) or {}
    for k in weights:
        base.setdefault(k, params[k])  # the first value replaced is the base's
    stale = [(k, v) for k, v in base.items() if k not in weights]  # a previous file's extra tensors
    if stale:
        model.load_weights(stale, strict=False)
    object.__setattr__(model, _FULL_BASE, base)
    object.__setattr__(model, _FULL_TUNED, None)
    model.load_weights(list(weights.items()), strict=False)
    mx.eval(model.parameters())
    return cfg


def seed_random(seed: int) -> None:
    """Seed MLX's random state (run it on the engine thread, before the answer it should fix)."""
    import mlx.core as mx

    mx.random.seed(seed)
