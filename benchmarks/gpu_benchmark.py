"""The CUDA paths, measured on a GPU against the CPU of the same machine.

- exemplar: quality on the clean benchmark's cases (CUDA vs CPU), seconds per 4 MP frame alone
  and in batches (`run_many`, images on concurrent streams), same bytes on a rerun and alone vs
  batched;
- regrain: seconds per 4 MP frame alone and in batches (`run_many`), same bytes on a rerun, alone vs
  batched, difference from the CPU's bytes;
- lama: a LaMa-contract TorchScript model built here (random weights: the path, not the quality),
  crops batched across images, difference from the CPU;
- sr: a real-size Real-ESRGAN compact network built here (random weights), tiled, if spandrel is
  installed;
- text detection: which onnxruntime providers there are.

    python benchmarks/gpu_benchmark.py            # a few minutes on one GPU
    python benchmarks/gpu_benchmark.py --quick    # a third of the cases

Writes benchmarks/results/gpu.md (or --out). Runs on the CPU alone too (then it says so), which
is how it is tested before a GPU is at hand.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from clean_benchmark import RESULTS, build_cases, run_engine, summary
from metrics import score

from tasks.clarify.regrain import Regrain
from tasks.clean import EditContext, composite
from tasks.clean.exemplar import Exemplar
from tasks.clean.lama import Lama
from tasks.clean.telea import Telea
from tasks.config import Config
from tasks.masks import mask_components
from tasks.registry import STAGES

CPU = Config(device="cpu")


def cuda_config(**settings) -> Config:
    return Config(device="cuda" if torch.cuda.is_available() else "cpu", **settings)


def synced(fn, *args):
    """fn(*args) and its wall time, the GPU's queue drained on both sides."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def context(case, engine: str = "exemplar", config: Config = CPU) -> EditContext:
    return EditContext(case.name, "object", "remove", case.seed, config,
                       fill_copies_grain=STAGES["clean", engine].copies_grain)


def differ(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> str:
    """How two outputs differ inside the mask: share of values changed and the largest change."""
    delta = np.abs(a.astype(np.int16) - b.astype(np.int16))[mask]
    return f"{(delta > 0).mean():.1%} of values differ, max {int(delta.max()) if delta.size else 0}"


def exemplar_section(quality, frames, lines: list[str]) -> None:
    gpu, cpu = Exemplar.from_config(cuda_config()), Exemplar.from_config(CPU)
    rows = {"cpu": [], "cuda": []}
    same_as_cpu = 0
    for case in quality:
        out_gpu, _ = run_engine(gpu, case, cuda_config())
        out_cpu, _ = run_engine(cpu, case, CPU)
        rows["cuda"].append(score(out_gpu, case.truth, case.mask))
        rows["cpu"].append(score(out_cpu, case.truth, case.mask))
        same_as_cpu += bool(np.array_equal(out_gpu, out_cpu))
    # All cases in one call: crops of every photo filled in batches of exemplar.batch (16).
    batched_config = cuda_config()
    batched = Exemplar.from_config(batched_config)
    filled = batched.run_many([(c.damaged, c.mask, context(c, config=batched_config)) for c in quality])
    rows["cuda, all cases in one run_many"] = [score(composite(c.damaged, out, c.mask), c.truth, c.mask)
                                                for c, out in zip(quality, filled)]
    lines += ["## exemplar: quality, CUDA vs CPU of this machine", "",
              "| device | cases | hf<0.5 | hf in [0.75,1.33] | median noise | median struct |", "|---|---|---|---|---|---|"]
    for device, scored in rows.items():
        s = summary(scored, [])
        lines.append(f"| {device} | {s['cases']} | {s['hf<0.5']:.0%} | {s['hf in band']:.0%} | "
                     f"{s['median noise']:.2f} | {s['median struct']:.3f} |")
    lines += ["", f"CUDA output identical to the CPU's in {same_as_cpu} of {len(quality)} cases "
              "(float sums in another order pick other matches; both are deterministic).", ""]

    # Speed on 4 MP frames. Warm-up first: the first call pays CUDA's and cuDNN's start.
    run_engine(gpu, frames[0], cuda_config())
    alone = []
    outputs = {}
    for case in frames:
        out, seconds = synced(gpu, case.damaged, case.mask, context(case, config=cuda_config()))
        alone.append(seconds * 4.096 / case.megapixels)
        outputs[case.name] = out
    again = [gpu(c.damaged, c.mask, context(c, config=cuda_config())) for c in frames[:2]]
    rerun_same = all(np.array_equal(a, outputs[c.name]) for a, c in zip(again, frames[:2]))
    cpu_times = [run_engine(cpu, c, CPU)[1] * 4.096 / c.megapixels for c in frames[:3]]
    lines += ["## exemplar: seconds per 4 MP frame", "",
              f"{len(frames)} frames of 2560x1600, objects over 2-5% of each.", "",
              "| how | images per call | s per image (mean) |", "|---|---|---|",
              f"| CPU, {torch.get_num_threads()} torch threads, one image at a time | 1 | {statistics.mean(cpu_times):.3f} |",
              f"| CUDA, one image at a time | 1 | {statistics.mean(alone):.3f} |"]
    megapixels = sum(c.megapixels for c in frames)
    changes = []
    for batch in (1, 4, 16, 64):
        config = cuda_config(exemplar={"batch": batch})
        engine = Exemplar.from_config(config)
        items = [(c.damaged, c.mask, context(c, config=config)) for c in frames]
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        results, seconds = synced(engine.run_many, items)
        peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
        again = engine.run_many(items)
        same = all(np.array_equal(a, b) for a, b in zip(results, again))
        changes.append((batch, same, [differ(r, outputs[c.name], c.mask) for r, c in zip(results, frames)][:3]))
        lines.append(f"| CUDA, run_many, exemplar.batch={batch} (peak {peak:.2f} GiB) | {len(frames)} | "
                     f"{seconds * 4.096 / megapixels:.3f} |")
    lines += ["", f"Same bytes on a rerun, one image at a time: {rerun_same}."]
    for batch, same, diffs in changes:
        lines.append(f"- batch {batch}: same bytes on a rerun of the batch: {same}; vs one image at a time: {'; '.join(diffs)}")
    lines.append("")


def telea_filled(frames) -> list[np.ndarray]:
    """The frames with Telea's fill in their holes: what regrain is measured on."""
    return [composite(c.damaged, Telea.from_config(CPU)(c.damaged, c.mask, context(c, "telea")), c.mask) for c in frames]


def regrain_section(frames, lines: list[str]) -> None:
    """Regrain after telea: one image at a time on CUDA and on the CPU, then all frames in one
    `run_many` at several `regrain.batch` sizes (their crops share batches)."""
    filled = telea_filled(frames)

    def items(config):
        return [(image, c.mask, context(c, "telea", config)) for c, image in zip(frames, filled)]

    megapixels = sum(c.megapixels for c in frames)
    crops = sum(len(mask_components(c.mask, CPU.regrain.margin)) for c in frames)
    gpu_config = cuda_config()
    gpu = Regrain.from_config(gpu_config)
    gpu(*items(gpu_config)[0])  # warm-up
    alone, times = [], []
    for item, case in zip(items(gpu_config), frames):
        out, seconds = synced(gpu, *item)
        alone.append(out)
        times.append(seconds * 4.096 / case.megapixels)
    same = all(np.array_equal(gpu(*item), out) for item, out in zip(items(gpu_config)[:3], alone))
    cpu = Regrain.from_config(CPU)
    start = time.perf_counter()
    on_cpu = [cpu(*item) for item in items(CPU)]
    cpu_seconds = (time.perf_counter() - start) * 4.096 / megapixels
    lines += ["## regrain (after telea)", "",
              f"{len(frames)} frames of 4 MP, {crops} crops. s per 4 MP frame:", "",
              "| how | s per 4 MP frame |", "|---|---|",
              f"| CPU, {torch.get_num_threads()} torch threads, one image at a time | {cpu_seconds:.3f} |",
              f"| CUDA, one image at a time (median; max {max(times):.3f}) | {statistics.median(times):.3f} |"]
    notes = [f"- one image at a time: same bytes on a rerun: {same}; CUDA vs CPU: "
             f"{'; '.join(differ(a, b, c.mask) for a, b, c in list(zip(alone, on_cpu, frames))[:3])}"]
    for batch in (1, 4, 16, 64):
        config = cuda_config(regrain={"batch": batch})
        engine = Regrain.from_config(config)
        engine.run_many(items(config))  # warm-up: this batch's shapes
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        results, seconds = synced(engine.run_many, items(config))
        peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
        again = engine.run_many(items(config))
        lines.append(f"| CUDA, run_many of {len(frames)} frames, regrain.batch={batch} (peak {peak:.2f} GiB) | "
                     f"{seconds * 4.096 / megapixels:.3f} |")
        notes.append(f"- batch {batch}: same bytes on a rerun: {all(np.array_equal(a, b) for a, b in zip(results, again))}; "
                     "vs one image at a time on CUDA: "
                     f"{'; '.join(differ(a, b, c.mask) for a, b, c in list(zip(results, alone, frames))[:3])}; "
                     f"vs the CPU: {'; '.join(differ(a, b, c.mask) for a, b, c in list(zip(results, on_cpu, frames))[:3])}")
    lines += ["", *notes, ""]


class ConvLama(torch.nn.Module):
    """The big-lama contract, (image, mask) -> image in [0, 1]; a few convolutions, random weights."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(4, width, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        fill = torch.sigmoid(self.body(torch.cat([image, mask], 1)))
        return image * (1 - mask) + fill * mask


def write_weights(folder: str, name: str, data: bytes) -> tuple[str, str]:
    path = Path(folder) / name
    path.write_bytes(data)
    return str(path), hashlib.sha256(data).hexdigest()


def lama_section(frames, folder: str, lines: list[str]) -> None:
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(ConvLama().eval()), buffer)
    uri, sha = write_weights(folder, "conv-lama.pt", buffer.getvalue())
    settings = {"lama": {"weights_uri": uri, "sha256": sha, "batch": 8}}
    gpu, cpu = Lama.from_config(cuda_config(**settings)), Lama.from_config(Config(device="cpu", **settings))
    items = [(c.damaged, c.mask, context(c, "lama", CPU)) for c in frames]
    gpu.run_many(items[:1])  # warm-up
    batched, seconds = synced(gpu.run_many, items)
    alone = [synced(gpu, *item)[1] for item in items]
    on_cpu = [cpu(*item) for item in items[:2]]
    megapixels = sum(c.megapixels for c in frames)
    lines += ["## lama (a 3-layer LaMa-contract model built here; the path, not LaMa's speed)", "",
              f"s per 4 MP frame on CUDA: batched {seconds * 4.096 / megapixels:.3f}, one at a time "
              f"{sum(alone) * 4.096 / megapixels:.3f}. CUDA vs CPU inside the mask: "
              f"{'; '.join(differ(b, c, f.mask) for b, c, f in zip(batched, on_cpu, frames))}.", ""]


def sr_section(frames, folder: str, lines: list[str]) -> None:
    try:
        from safetensors.torch import save
        from spandrel.architectures.Compact import Compact

        from tasks.clarify.sr import LearnedEnhancer
    except ImportError as error:
        lines += ["## sr", "", f"skipped: {error}", ""]
        return
    torch.manual_seed(0)
    # Real-ESRGAN's realesr-general-x4v3 shape: 64 features, 32 convolutions, x4.
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4)
    uri, sha = write_weights(folder, "compact.safetensors", save({k: v.contiguous() for k, v in model.state_dict().items()}))
    settings = {"clarify": "sr", "sr": {"weights_uri": uri, "sha256": sha}}
    gpu = LearnedEnhancer.from_config(cuda_config(**settings))
    cpu = LearnedEnhancer.from_config(Config(device="cpu", **settings))
    case = frames[0]
    gpu(case.damaged, case.mask, context(case))  # warm-up
    times = [synced(gpu, c.damaged, c.mask, context(c))[1] * 4.096 / c.megapixels for c in frames]
    out_gpu = gpu(case.damaged, case.mask, context(case))
    cpu_out, cpu_seconds = synced(cpu, case.damaged, case.mask, context(case))
    lines += ["## sr (Real-ESRGAN compact x4 at its real size, random weights)", "",
              f"s per 4 MP frame: CUDA median {statistics.median(times):.3f}; CPU {cpu_seconds * 4.096 / case.megapixels:.3f}. "
              f"CUDA vs CPU inside the mask: {differ(out_gpu, cpu_out, case.mask)}.", ""]


def detect_section(lines: list[str]) -> None:
    try:
        import onnxruntime
    except ImportError as error:
        lines += ["## text detection", "", f"skipped: {error}", ""]
        return
    lines += ["## text detection", "", f"onnxruntime {onnxruntime.__version__} providers: "
              f"{', '.join(onnxruntime.get_available_providers())}.", ""]


def profile_section(frames, lines: list[str]) -> None:
    """Where exemplar's and regrain's time goes on the GPU: kernels launched, and how busy they keep it."""
    if not torch.cuda.is_available():
        lines += ["## exemplar profile", "", "skipped: no GPU", ""]
        return
    from torch.profiler import ProfilerActivity, profile

    for batch, chosen in ((1, frames[:1]), (16, frames)):
        config = cuda_config(exemplar={"batch": batch})
        engine = Exemplar.from_config(config)
        items = [(c.damaged, c.mask, context(c, config=config)) for c in chosen]
        engine.run_many(items)  # warm-up
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            _, wall = synced(engine.run_many, items)
        profile_lines(prof, wall, f"exemplar profile (exemplar.batch={batch}, {len(chosen)} frame(s) of 4 MP, "
                      "under the profiler)", lines)
    filled = telea_filled(frames)
    for batch in (1, 16):
        config = cuda_config(regrain={"batch": batch})
        engine = Regrain.from_config(config)
        items = [(image, c.mask, context(c, "telea", config)) for c, image in zip(frames, filled)]
        engine.run_many(items)  # warm-up
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            _, wall = synced(engine.run_many, items)
        profile_lines(prof, wall, f"regrain profile (regrain.batch={batch}, {len(frames)} frames of 4 MP, "
                      "under the profiler)", lines)


def profile_lines(prof, wall: float, title: str, lines: list[str]) -> None:
    events = prof.key_averages()
    on_gpu = [e for e in events if str(getattr(e, "device_type", "")).endswith("CUDA")]
    kernels = sum(e.count for e in on_gpu)
    busy = sum(getattr(e, "self_device_time_total", 0) for e in on_gpu) / 1e6
    for key in ("self_device_time_total", "self_cpu_time_total"):
        try:
            print(events.table(sort_by=key, row_limit=12), flush=True)
        except Exception as error:
            print(f"no table by {key}: {error}")
    lines += [f"## {title}", "",
              f"{kernels} kernels; GPU busy {busy:.3f} s of {wall:.3f} s wall.", ""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sections", default="exemplar,regrain,lama,sr,detect,profile")
    parser.add_argument("--out", default=str(RESULTS / "gpu.md"))
    args = parser.parse_args(argv)
    torch.backends.cudnn.benchmark = False  # a fixed algorithm per shape: the same bytes on a rerun
    rng = np.random.default_rng(2024)
    quality, frames = build_cases(1 if args.quick else 3, 2 if args.quick else 6, 2 if args.quick else 4, rng)
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU (CUDA unavailable: CPU only)"
    lines = ["# The CUDA paths", "", f"`python benchmarks/gpu_benchmark.py{' --quick' if args.quick else ''}` on {name}, "
             f"{platform.machine()} with {os.cpu_count()} CPU cores, torch {torch.__version__}.", ""]
    sections = args.sections.split(",")
    with tempfile.TemporaryDirectory() as folder:
        steps = {"exemplar": lambda: exemplar_section(quality, frames, lines),
                 "regrain": lambda: regrain_section(frames, lines),
                 "lama": lambda: lama_section(frames, folder, lines),
                 "sr": lambda: sr_section(frames, folder, lines),
                 "detect": lambda: detect_section(lines),
                 "profile": lambda: profile_section(frames, lines)}
        printed = 0
        for section in sections:
            started = time.perf_counter()
            try:
                steps[section]()
            except Exception:
                lines += [f"## {section}: FAILED", "", "```", traceback.format_exc(), "```", ""]
            print(f"[{section}: {time.perf_counter() - started:.0f} s]", flush=True)
            print("\n".join(lines[printed:]), flush=True)
            printed = len(lines)
            Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
