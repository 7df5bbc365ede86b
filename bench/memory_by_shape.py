"""Peak RSS of LoRA training steps over many sequence lengths: does memory grow with the number of shapes?

    python bench/memory_by_shape.py MODEL_DIR bf16              # one step per length 16, 24, ..., 512
    python bench/memory_by_shape.py MODEL_DIR bf16 --same       # length 512 every step
    python bench/memory_by_shape.py MODEL_DIR bf16 --pad 32     # lengths drawn from multiples of 32 (160 steps)
    ONEDNN_PRIMITIVE_CACHE_CAPACITY=16 python bench/memory_by_shape.py MODEL_DIR bf16

MODEL_DIR: a DistilBERT-architecture model, such as the MiniLM stand-in (python standin_model.py OUT_DIR).
Modes: fp32; bf16 (autocast); bf16-frozen (autocast, frozen linear weights cast to bf16 once, as train.py does);
--eager uses the eager attention instead of the fused kernel. Batch 4, random token ids, LoRA r=4 on q_lin.
"""
import argparse
import random
import resource
import time

import torch
from peft import LoraConfig, TaskType, get_peft_model
from transformers import AutoModelForSequenceClassification

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("mode", choices=["fp32", "bf16", "bf16-frozen"])
p.add_argument("--same", action="store_true")
p.add_argument("--pad", type=int)
p.add_argument("--eager", action="store_true")
a = p.parse_args()

model = AutoModelForSequenceClassification.from_pretrained(a.model, attn_implementation="eager" if a.eager else "sdpa")
model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=4, lora_alpha=32, target_modules=["q_lin"],
                                         modules_to_save=["pre_classifier", "classifier"]))
if a.mode == "bf16-frozen":
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and not module.weight.requires_grad:
            module.to(torch.bfloat16)
optimizer = torch.optim.AdamW([w for w in model.parameters() if w.requires_grad], lr=1e-3)
random.seed(0)
lengths = ([512] * 63 if a.same else [random.choice(range(a.pad, 513, a.pad)) for _ in range(160)] if a.pad
           else list(range(16, 513, 8)))
start = time.time()
for n in lengths:
    ids = torch.randint(1000, 20000, (4, n))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.mode != "fp32"):
        loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1, 0, 1])).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(f"{a.mode}{' eager' if a.eager else ''}: {len(lengths)} steps, {len(set(lengths))} lengths: peak RSS {peak} MiB, "
      f"{time.time() - start:.0f} s")
