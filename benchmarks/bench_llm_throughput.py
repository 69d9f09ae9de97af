"""brainalign's text-feature extraction vs a plain ``model(**inputs)`` loop over the same batches.

Two causal LMs from the tiny builder (``brainalign.steering.models.build_tiny_causal_lm``, Qwen2 architecture,
random weights): a tiny one (64 wide, 4 layers) and a mid-size one (the biggest that runs here in reasonable
time; 768 wide, 12 layers by default). Both arms run the same tokenised batches of the same texts on the same
loaded model in the same dtype and device: brainalign's ``TextExtractor.embed`` (every layer, mean pooling, float32
on the host) against a bare loop that only calls ``model(**inputs, output_hidden_states=True)``. The ratio is the
overhead of brainalign's pooling and host copies. Timed A/B/A/B; the best of each is kept, with the load average.

    PYTHONPATH=src python benchmarks/bench_llm_throughput.py [--device cpu|cuda] [--dtype float32|bfloat16]
        [--texts 256] [--batch-size 32] [--repeats 2] [--threads 1] [--mid 768x12]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time


def _texts(n: int) -> list[str]:
    from brainalign.steering import tasks

    items = tasks.generate_items("syllogism", n // 2, seed=0) + tasks.generate_items("transitive", n - n // 2, seed=0)
    return [" ".join(it.premises) + " " + it.conclusion for it in items]


def _plain_loop(model, batches) -> float:
    import torch

    t0 = time.perf_counter()
    with torch.inference_mode():
        for enc in batches:
            model(**enc, output_hidden_states=True)
    if next(model.parameters()).is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _brainalign(ex, texts) -> float:
    import torch

    t0 = time.perf_counter()
    ex.embed(texts, "all")
    if next(ex._model.parameters()).is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def run(folder, label: str, texts, args) -> None:
    from brainalign.features.hf_loading import input_device
    from brainalign.features.hf_text import TextExtractor

    ex = TextExtractor(str(folder), dtype=args.dtype, device=args.device, batch_size=args.batch_size)
    ex.load()
    model, tok = ex._model, ex._tokenizer
    dev = input_device(model)
    batches = [{k: v.to(dev) for k, v in tok(texts[s:s + args.batch_size], padding=True, truncation=True,
                                               return_tensors="pt").items()}
               for s in range(0, len(texts), args.batch_size)]
    n_tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    n_params = sum(p.numel() for p in model.parameters())
    _plain_loop(model, batches[:1]), _brainalign(ex, texts[:args.batch_size])  # warm-up
    plain, ours = [], []
    for _ in range(args.repeats):
        plain.append(_plain_loop(model, batches))
        ours.append(_brainalign(ex, texts))
    p, o = min(plain), min(ours)
    print(f"{label}: {n_params / 1e6:.1f} M params, {len(texts)} texts, {n_tokens} tokens, batch {args.batch_size}, "
          f"{args.dtype} on {dev}")
    print(f"  plain model(**inputs) loop: {p:.3f} s ({len(texts) / p:,.1f} texts/s)")
    print(f"  brainalign TextExtractor.embed: {o:.3f} s ({len(texts) / o:,.1f} texts/s)")
    print(f"  ratio brainalign / plain: {o / p:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--texts", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--mid", default="768x12", help="width x layers of the mid-size model")
    args = ap.parse_args()

    import torch
    from transformers.utils import logging

    from brainalign.steering.models import build_tiny_causal_lm

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}, "
          f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    texts = _texts(args.texts)
    width, depth = (int(x) for x in args.mid.split("x"))
    with tempfile.TemporaryDirectory(prefix="bench-llm-") as tmp:
        tiny = build_tiny_causal_lm(f"{tmp}/tiny", "qwen2", hidden_size=64, num_layers=4, seed=0)
        run(tiny, "tiny (64 x 4)", texts, args)
        mid = build_tiny_causal_lm(f"{tmp}/mid", "qwen2", hidden_size=width, num_layers=depth,
                                   num_heads=max(4, width // 64), seed=0)
        run(mid, f"mid ({width} x {depth})", texts, args)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
