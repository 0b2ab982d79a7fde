"""Per-prompt CPU cost of the ViT-B/16 text tower on a random sample of ADE-847 prompts: full 77-token
context (open_clip encode_text) vs cut at the batch's last end token; extrapolated to all prompts.

    OMP_NUM_THREADS=1 python scripts/bench_vocabulary_sample.py   (random weights, no download)
"""

import json
import random
import time

import torch

from mrovseg.data.vocabularies import get_templates, get_vocabulary
from mrovseg.model.clip_backbone import CLIPBackbone
from mrovseg.model.text_encoder import encode_prompts

torch.set_num_threads(1)

names = get_vocabulary("ade847")
t = list(get_templates("vild"))
p = [x.format(s.strip()) for n in names for s in n.split(",") if s.strip() for x in t]
random.seed(0)
sample = random.sample(p, 512)
torch.manual_seed(0)
b = CLIPBackbone("ViT-B-16", pretrained=None)
tok = b.tokenizer(sample)
c = time.process_time()
with torch.no_grad():
    full = torch.nn.functional.normalize(b.clip.encode_text(tok).float(), dim=-1)
cb = time.process_time() - c
c = time.process_time()
ours = encode_prompts(b.encode_text, b.tokenizer, sample, 256, False, "cpu")
ca = time.process_time() - c
print(
    json.dumps(
        {
            "sample": len(sample),
            "prompts_total": len(p),
            "before_cpu_per_prompt_ms": round(1000 * cb / len(sample), 1),
            "after_cpu_per_prompt_ms": round(1000 * ca / len(sample), 1),
            "before_cpu_s_extrapolated": round(cb / len(sample) * len(p)),
            "after_cpu_s_extrapolated": round(ca / len(sample) * len(p)),
            "max_abs_diff": (ours - full).abs().max().item(),
        }
    )
)
