"""Another backbone by its name alone: with TARGET_MODULES left at the seed's q_lin (DistilBERT's query), LoRA goes on
each architecture's own attention query projection, and the model: line says which and why."""
import json
import os

import pytest
from conftest import BAD, FILLER, GOOD, in_process

SMALL = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=100,
             pad_token_id=0, bos_token_id=1, eos_token_id=2)
# the query projection of each, read from its modelling code in transformers (a fused query-key-value layer where the
# architecture has no query of its own), and what else its config needs to be this small
BACKBONES = {
    "distilbert": ("q_lin", dict(dim=32, n_layers=1, n_heads=2, hidden_dim=64)),
    "bert": ("query", {}), "roberta": ("query", {}), "deberta-v2": ("query_proj", {}), "modernbert": ("Wqkv", {}),
    "electra": ("query", {"embedding_size": 32}), "xlm-roberta": ("query", {}), "mpnet": ("q", {}),
    "albert": ("query", {"embedding_size": 16}), "gpt2": ("c_attn", dict(n_embd=32, n_layer=1, n_head=2)),
    "llama": ("q_proj", {"num_key_value_heads": 2}), "qwen3": ("q_proj", {"num_key_value_heads": 2, "head_dim": 16}),
    "gemma3_text": ("q_proj", {"num_key_value_heads": 2, "head_dim": 16}),
    "mistral": ("q_proj", {"num_key_value_heads": 2}), "phi3": ("qkv_proj", {"num_key_value_heads": 2}),
}


def tiny(model_type, **extra):
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers import logging as transformers_logging
    transformers_logging.set_verbosity_error()  # small vocabularies: the special token ids beyond them are warned of
    try:
        config = AutoConfig.for_model(model_type, **{"num_labels": 2, **SMALL, **BACKBONES[model_type][1], **extra})
        return AutoModelForSequenceClassification.from_config(config)
    finally:
        transformers_logging.set_verbosity_warning()


@pytest.mark.parametrize("model_type", BACKBONES)
def test_the_seeds_targets_become_each_architectures_query(model_type):
    from argparse import Namespace

    from peft import LoraConfig, TaskType, get_peft_model

    from textlora import models
    model = tiny(model_type)
    targets, why = models.target_modules(model, Namespace(target_modules=["q_lin"], model_name=model_type))
    query = BACKBONES[model_type][0]
    assert targets == [query]
    assert (why is None) == (model_type == "distilbert") and (why is None or query in why)
    # a layer the user names is used as given
    assert models.target_modules(model, Namespace(target_modules=[query], model_name=model_type)) == ([query], None)
    wrapped = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=2, target_modules=targets))
    assert {n.split(".")[-1] for n, m in wrapped.named_modules() if hasattr(m, "lora_A")} == {query}


@pytest.mark.parametrize("model_type", ["bert", "llama"])
def test_train_py_with_another_backbone_by_name_alone_trains_and_predict_py_agrees(model_type, tiny_imdb, tmp_path):
    from transformers import BertTokenizer
    folder = tmp_path / model_type
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + GOOD + BAD + FILLER))
    BertTokenizer.from_pretrained(str(folder)).save_pretrained(str(folder))
    tiny(model_type, vocab_size=5 + len(GOOD + BAD + FILLER), max_position_embeddings=128).save_pretrained(str(folder))
    out = tmp_path / "run"
    proc = in_process("train", "--model_name", str(folder), "--dataset_name", tiny_imdb, "--train_size", "100",
                      "--min_epoch_rows", "0", "--eval_size", "200", "--mixed_precision", "no",
                      "--output_dir", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    query = BACKBONES[model_type][0]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("model:"))
    assert f"({query}: TARGET_MODULES q_lin is DistilBERT's query; {model_type}'s attention query projection is " \
           f"{query})" in line
    adapter = out / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["target_modules"] == [query]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["lora_target_modules"] == [query] and f"target modules ['{query}']" in \
        (adapter / "README.md").read_text()
    # predict.py labels the evaluation rows (the whole test split) as the run scored them
    said = in_process("predict", str(adapter), "--file", os.path.join(tiny_imdb, "plain_text",
                                                                      "test-00000-of-00001.parquet"),
                      "--output", str(tmp_path / "labelled.jsonl"))
    assert said.returncode == 0, said.stderr[-3000:]
    scored = json.loads((tmp_path / "labelled.jsonl.metrics.json").read_text())
    assert scored["scored_rows"] == 200 and scored["accuracy"] == metrics["eval_accuracy"]
