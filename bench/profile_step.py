"""Where a training step's time goes: torch.profiler on one step of the full-size DistilBERT architecture.

    python bench/profile_step.py                          # train.py's defaults: batch 4 x 300 tokens,
                                                          # no attention dropout
    python bench/profile_step.py --attention_dropout 0.1  # the plain recipe's model (DistilBERT's own dropout)
    python bench/profile_step.py --eval                   # one evaluation batch instead

Random weights (timing only); prints the step time, its model GFLOP/s, and the top operators by self CPU time.
"""
import argparse
import time

import torch
from peft import LoraConfig, TaskType, get_peft_model
from torch.profiler import ProfilerActivity, profile
from transformers import DistilBertConfig, DistilBertForSequenceClassification

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=4)
p.add_argument("--length", type=int, default=300)
p.add_argument("--attention_dropout", type=float, default=0.0)
p.add_argument("--bf16", action="store_true", help="bf16 autocast")
p.add_argument("--attention", default="sdpa", choices=["sdpa", "eager"], help="attention implementation")
p.add_argument("--dropout", type=float, default=0.1, help="hidden dropout (DistilBERT's own: 0.1)")
p.add_argument("--frozen_bf16", action="store_true", help="frozen base weights cast to bf16 once, not by autocast")
p.add_argument("--steps", type=int, default=3)
p.add_argument("--no_profile", action="store_true")
p.add_argument("--eval", action="store_true")
a = p.parse_args()

torch.manual_seed(0)
config = DistilBertConfig(attention_dropout=a.attention_dropout, dropout=a.dropout, attn_implementation=a.attention)
model = get_peft_model(DistilBertForSequenceClassification(config),
                       LoraConfig(task_type=TaskType.SEQ_CLS, r=4, lora_alpha=32, lora_dropout=0.01,
                                  target_modules=["q_lin"]))
if a.frozen_bf16:
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and not module.weight.requires_grad:
            module.to(torch.bfloat16)
ids = torch.randint(1000, 20000, (a.batch, a.length))
mask, labels = torch.ones_like(ids), torch.arange(a.batch) % 2


def step():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
        if a.eval:
            model.eval()
            with torch.no_grad():
                model(input_ids=ids, attention_mask=mask)
        else:
            model.train()
            model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()


step()  # warm-up
step()
start = time.time()
for _ in range(a.steps):
    step()
seconds = (time.time() - start) / a.steps
d, h, n = config.dim, config.hidden_dim, config.n_layers
forward = a.batch * a.length * n * (2 * (4 * d * d + 2 * d * h) + 4 * a.length * d)
flops = forward if a.eval else 2 * forward  # training: forward + backward to the inputs (frozen weights)
print(f"{'eval' if a.eval else 'train'} step, batch {a.batch} x {a.length} tokens: {seconds * 1000:.0f} ms, "
      f"{flops / seconds / 1e9:.0f} model GFLOP/s ({a.attention}, dropout {a.dropout}, "
      f"{'bf16 autocast' if a.bf16 else 'fp32'}{', frozen weights bf16' if a.frozen_bf16 else ''})")
if a.no_profile:
    raise SystemExit
with profile(activities=[ProfilerActivity.CPU]) as prof:
    step()
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
