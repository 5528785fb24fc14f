"""Fuse an adapter into its base (optionally also writing GGUF), or export GGUF directly."""

from __future__ import annotations

from mlxtui.core import events as ev
from mlxtui.core.jobs.context import EngineError, JobContext
from mlxtui.core.progress import staged


def run(ctx: JobContext) -> str:
    from mlxtui.core import export

    job = ctx.job
    # the adapter the chat answers with: a run's folder, or the very checkpoint file chosen
    adapter = job.adapter_path or ctx.slot.adapter_path
    if not adapter:
        raise EngineError("there is no adapter to export", "train first, or give an adapter folder")
    info = ctx.slot.info
    spec = str(info.path) if info is not None else None
    try:
        if job.kind == "fuse":
            total = 3 if job.gguf_path is None else 4
            with staged(ctx.reporter, "fuse", "fusing the adapter", total, None) as progress:
                out = export.fuse_adapter(
                    spec,
                    adapter,
                    job.save_path,
                    dequantize=job.dequantize,
                    force=job.force,
                    progress=progress,
                    gguf_file=job.gguf_path,
                )
        else:
            with staged(ctx.reporter, "export", "exporting GGUF", 3, None) as progress:
                out = export.export_gguf(
                    spec, adapter, job.out_file, force=job.force, progress=progress
                )
    except export.ExportError as e:
        raise EngineError(str(e)) from None
    ctx.emit(ev.Log("info", f"written: {out}"))
    return str(out)
