#!/bin/bash
# The H200 runs of benchmarks/README.md (training speed). Run from the folder holding `code/`
# (mlxtui, benchmarks, tests/tiny_model.py), with MLX's CUDA wheels set up by `setup`:
#   bash code/benchmarks/h200.sh setup WHEELS_DIR   # mlx, mlx-cuda-13 (as a tar.xz), mlx-lm
#   bash code/benchmarks/h200.sh stage1|stage2
# MLX's CUDA libraries are found at $ORIGIN/../../nvidia, so the image's PyTorch nvidia folder
# is linked in beside the mlx package.
set -u
SITE=/tmp/site
CODE=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH=$SITE:$CODE PYTHONUNBUFFERED=1
B="python3 $CODE/benchmarks"
case "$1" in
setup)
  W=$2
  python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE "$W"/*.whl || exit 1
  tar xJf "$W"/cuda.tar.xz -C $SITE || exit 1
  SP=$(python3 -c 'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))')
  ln -sfn "$SP/nvidia" $SITE/nvidia
  python3 -c 'import mlx.core as mx; print(mx.default_device(), mx.device_info())'
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  python3 -c 'import peft, torch, transformers; print("peft", peft.__version__, "torch", torch.__version__, "transformers", transformers.__version__)'
  ;;
stage1)
  # the first MLX run compiles its kernels (75-120 s): a short run first, not measured
  timeout 200 $B/bench_train.py --preset smollm2-135m --iters 8 --layers 4
  timeout 100 $B/bench_chunked_loss.py --hidden 2048 --layers 2 --rounds 1
  timeout 330 $B/bench_speed.py --preset llama-3.2-1b --layers 16 --grad-checkpoint --iters 50 --skip 15 --rounds 2 --peft
  ;;
stage2)
  timeout 330 $B/bench_speed.py --preset llama-3.2-3b --layers 16 --grad-checkpoint --iters 50 --skip 15 --rounds 2 --peft
  timeout 200 $B/bench_speed.py --preset llama-3.2-3b --bits 4 --layers 1 --grad-checkpoint --iters 50 --skip 15 --rounds 1
  ;;
stage3)
  # packing, after the fix for checkpointed blocks (the mask under stop_gradient)
  V="--variants mlx_lm.lora,mlxtui--pack --grad-checkpoint --iters 50 --skip 15"
  timeout 200 $B/bench_speed.py --preset llama-3.2-1b --layers 16 --rounds 2 $V
  timeout 150 $B/bench_speed.py --preset llama-3.2-3b --layers 16 --rounds 1 $V
  timeout 120 $B/bench_speed.py --preset llama-3.2-3b --bits 4 --layers 1 --rounds 1 $V
  ;;
stage4a)
  # session of 2026-11-30, on the two-H200 machine (single-GPU figures on GPU 0):
  # fast LoRA (default) vs mlx-lm's LoRA layers inside mlxtui (--plain-lora), packing
  export CUDA_VISIBLE_DEVICES=0
  timeout 170 $B/bench_train.py --preset smollm2-135m --iters 8 --layers 4
  V="--grad-checkpoint --iters 50 --skip 15"
  timeout 260 $B/bench_speed.py --preset llama-3.2-1b --layers 16 --rounds 2 $V --variants mlx_lm.lora,mlxtui,mlxtui--pack,mlxtui--plain-lora
  timeout 140 $B/bench_speed.py --preset llama-3.2-3b --bits 4 --layers 1 --rounds 1 $V --variants mlx_lm.lora,mlxtui,mlxtui--pack
  ;;
stage4b)
  export CUDA_VISIBLE_DEVICES=0
  V="--grad-checkpoint --iters 50 --skip 15"
  timeout 300 $B/bench_speed.py --preset llama-3.2-3b --layers 16 --rounds 2 $V --variants mlx_lm.lora,mlxtui,mlxtui--pack
  timeout 80 $B/bench_chunked_loss.py --hidden 2048 --layers 2 --rounds 1
  timeout 80 $B/bench_chunked_loss.py --hidden 2048 --layers 2 --rounds 1 --compile
  unset CUDA_VISIBLE_DEVICES
  timeout 200 $B/bench_distributed.py --preset llama-3.2-1b --layers 16 --backend nccl --iters 30 --warmup 8 --budget 170
  ;;
stage5a)
  # session of 2026-11-30 (second): one H200. Warm-up, then the 3B 4-bit quick-start shape
  timeout 170 $B/bench_train.py --preset smollm2-135m --iters 8 --layers 4
  V="--grad-checkpoint --iters 50 --skip 15"
  timeout $((515 - SECONDS)) $B/bench_speed.py --preset llama-3.2-3b --bits 4 --layers 1 --rounds 2 $V --variants mlx_lm.lora,mlxtui,mlxtui--pack
  ;;
stage5b)
  # 3B bf16: fast LoRA against mlx-lm's LoRA layers inside mlxtui, paired; packing with 8 rows of 2048
  V="--grad-checkpoint --iters 50 --skip 15"
  timeout 575 $B/bench_speed.py --preset llama-3.2-3b --layers 16 --rounds 2 $V --pack-batch-size 8 --variants mlx_lm.lora,mlxtui,mlxtui--plain-lora,mlxtui--pack
  ;;
stage5c)
  # the chunked loss's peak on the GPU with the run-ahead limited, and with smaller chunks
  timeout 120 $B/bench_chunked_loss.py --hidden 2048 --layers 2 --rounds 1 --compile --steps 2 --memory-limit-gb 4
  timeout 120 $B/bench_chunked_loss.py --hidden 2048 --layers 2 --rounds 1 --compile --steps 2 --chunk-tokens 64
  ;;
stage6a)
  # session of 2026-12-01: the figures at the current main. Warm-up, then 1B bf16
  timeout 170 $B/bench_train.py --preset smollm2-135m --iters 8 --layers 4
  V="--grad-checkpoint --iters 40 --skip 12"
  timeout $((490 - SECONDS)) $B/bench_speed.py --preset llama-3.2-1b --layers 16 --rounds 2 $V --variants mlx_lm.lora,mlxtui,mlxtui--pack
  ;;
stage6b)
  # 3B bf16 (8 packed rows of 2048) and the 3B 4-bit quick-start shape, one round each
  V="--grad-checkpoint --iters 40 --skip 12 --rounds 1"
  timeout 330 $B/bench_speed.py --preset llama-3.2-3b --layers 16 $V --pack-batch-size 8 --variants mlx_lm.lora,mlxtui,mlxtui--pack
  timeout $((570 - SECONDS)) $B/bench_speed.py --preset llama-3.2-3b --bits 4 --layers 1 $V --variants mlx_lm.lora,mlxtui,mlxtui--pack
  ;;
stage6c)
  # 3B bf16 two more rounds (rows of 2048), then 1B one more round
  V="--grad-checkpoint --iters 40 --skip 12"
  timeout 330 $B/bench_speed.py --preset llama-3.2-3b --layers 16 $V --rounds 2 --pack-batch-size 8 --variants mlx_lm.lora,mlxtui,mlxtui--pack
  timeout $((540 - SECONDS)) $B/bench_speed.py --preset llama-3.2-1b --layers 16 --rounds 1 $V --variants mlx_lm.lora,mlxtui,mlxtui--pack
  ;;
stage6d)
  # shorter packed rows, as many tokens a step: --max-seq-length near the longest example (456
  # tokens: nothing is cut, for mlx-lm either) with the packed batch scaled up
  V="--grad-checkpoint --iters 40 --skip 12 --rounds 1"
  timeout 200 $B/bench_speed.py --preset llama-3.2-3b --layers 16 $V --max-seq-length 640 --pack-batch-size 24 --variants mlx_lm.lora,mlxtui--pack
  timeout 200 $B/bench_speed.py --preset llama-3.2-3b --layers 16 $V --max-seq-length 1024 --pack-batch-size 16 --variants mlx_lm.lora,mlxtui--pack
  ;;
stage6e)
  V="--grad-checkpoint --iters 40 --skip 12 --rounds 1"
  timeout 150 $B/bench_speed.py --preset llama-3.2-1b --layers 16 $V --max-seq-length 640 --pack-batch-size 12 --variants mlx_lm.lora,mlxtui--pack
  timeout 150 $B/bench_speed.py --preset llama-3.2-3b --bits 4 --layers 1 $V --max-seq-length 640 --pack-batch-size 12 --variants mlx_lm.lora,mlxtui--pack
  ;;
esac
