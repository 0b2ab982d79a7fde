"""First-answer time of a benchmark vocabulary on the CPU: full-context vs truncated text encoding, disk cache.

    python scripts/bench_vocabulary.py --vocabulary ade847 --model ViT-B-16 --threads 2

Builds a random-weight open_clip text tower of real size (no download; the cost does not depend on the
weights) and times, for the vocabulary × the ViLD templates (the default, 14):

* ``before``: every prompt through open_clip's ``encode_text`` over the whole 77-token context, in
  batches of 1024 (what ``CLIPBackbone.encode_vocabulary`` did before the truncation);
* ``after``: ``CLIPBackbone.encode_vocabulary`` with the disk cache off (length-sorted batches, each cut
  after its longest prompt's end token);
* ``cached``: a new backbone with the same weights reading the disk cache (includes hashing the
  text-tower weights).

``--before-fraction`` times ``before`` on that fraction of the prompts and scales it (its cost is linear
in the number of prompts), to keep the run short; 1 runs it all. Prints a JSON summary with wall-clock
and CPU (``time.process_time``) seconds; on a shared machine, CPU seconds with ``--threads 1`` are the
stable figure.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch
import torch.nn.functional as F


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vocabulary", default="ade847")
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--templates", default="vild")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--before-fraction", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from mrovseg.data.vocabularies import get_templates, get_vocabulary
    from mrovseg.model.clip_backbone import CLIPBackbone

    names, templates = get_vocabulary(args.vocabulary), list(get_templates(args.templates))
    prompts = [t.format(s.strip()) for n in names for s in n.split(",") if s.strip() for t in templates]
    torch.manual_seed(0)
    backbone = CLIPBackbone(args.model, pretrained=None)
    tokens = backbone.tokenizer(prompts)
    lengths = (tokens != 0).sum(dim=-1)
    result = {
        "vocabulary": args.vocabulary,
        "classes": len(names),
        "templates": len(templates),
        "prompts": len(prompts),
        "context": int(tokens.shape[1]),
        "prompt_tokens_mean": round(float(lengths.float().mean()), 1),
        "prompt_tokens_max": int(lengths.max()),
        "threads": args.threads,
        "torch": torch.__version__,
    }

    count = max(1, round(len(prompts) * args.before_fraction))
    start, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for i in range(0, count, 1024):
            F.normalize(backbone.clip.encode_text(tokens[i : min(i + 1024, count)]).float(), dim=-1)
    scale = len(prompts) / count
    result["before_s"] = round((time.perf_counter() - start) * scale, 1)
    result["before_cpu_s"] = round((time.process_time() - cpu) * scale, 1)
    result["before_measured_prompts"] = count

    with tempfile.TemporaryDirectory() as cache:
        os.environ["MROVSEG_CACHE"] = "off"
        start, cpu = time.perf_counter(), time.process_time()
        emb = backbone.encode_vocabulary(names, templates)
        result["after_s"] = round(time.perf_counter() - start, 1)
        result["after_cpu_s"] = round(time.process_time() - cpu, 1)

        os.environ["MROVSEG_CACHE"] = cache
        from mrovseg.model import text_cache

        key = text_cache.entry_key(backbone.text_fingerprint(), templates, names)
        text_cache.save(text_cache.cache_dir(), key, templates, names, emb)  # the entry a run would write
        torch.manual_seed(0)
        fresh = CLIPBackbone(args.model, pretrained=None)
        start, cpu = time.perf_counter(), time.process_time()
        again = fresh.encode_vocabulary(names, templates)
        result["cached_s"] = round(time.perf_counter() - start, 2)
        result["cached_cpu_s"] = round(time.process_time() - cpu, 2)
        result["cached_equal"] = bool(torch.equal(again, emb))
    result["speedup_wall"] = round(result["before_s"] / result["after_s"], 1)
    result["speedup_cpu"] = round(result["before_cpu_s"] / result["after_cpu_s"], 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
