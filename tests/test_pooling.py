"""The head reads the mean of a text's tokens where an architecture's head reads its first token: the logits are the
head's on the mean of the final states, computed here by hand, whatever the padding."""
import pytest
from test_backbones import BACKBONES, SMALL, tiny

from textlora import pooling


def head_on(model, model_type, states):
    """The head of each architecture on the final states, as its modelling code in transformers applies it."""
    import torch
    if model_type == "distilbert":
        return model.classifier(torch.relu(model.pre_classifier(states[:, 0])))
    if model_type == "deberta-v2":
        return model.classifier(model.pooler(states))
    return model.classifier(states)  # RoBERTa, XLM-R, ELECTRA, MPNet: a head that takes [:, 0] itself


@pytest.mark.parametrize("model_type", BACKBONES)
def test_a_mean_pooled_head_reads_the_mean_of_the_tokens_and_not_the_padding(model_type):
    import torch
    torch.manual_seed(0)
    model = tiny(model_type).eval()
    if model_type not in pooling.HEAD_READS_THE_FIRST_TOKEN:  # the rest read the first token inside, or the last
        with pytest.raises(ValueError, match="cannot read the mean"):
            pooling.mean_pooled(model)
        assert pooling.pooled(model) == pooling.FIRST
        return
    ids = torch.tensor([[1, 5, 6, 7, 8, 2], [1, 9, 10, 2, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        first = model(input_ids=ids, attention_mask=mask).logits
        states = pooling.base_of(model)(input_ids=ids, attention_mask=mask)[0]
        by_hand = torch.stack([states[0, :6].mean(0), states[1, :4].mean(0)])  # the second text's 4 tokens
        expected = head_on(model, model_type, torch.cat([by_hand.unsqueeze(1), states[:, 1:]], 1))
        pooling.mean_pooled(pooling.mean_pooled(model))  # once, however often asked
        assert pooling.pooled(model) == pooling.MEAN
        mean = model(input_ids=ids, attention_mask=mask).logits
        alone = model(input_ids=ids[1:, :4], attention_mask=mask[1:, :4]).logits  # the second text unpadded
    assert not torch.allclose(mean, first)
    torch.testing.assert_close(mean, expected)
    torch.testing.assert_close(alone[0], mean[1], rtol=1e-4, atol=1e-5)


# each architecture's last layer of its head, by the name its modelling code in transformers gives it
LAST_LAYER = {"distilbert": "classifier", "deberta-v2": "classifier"}


@pytest.mark.parametrize("model_type, extra", [(t, {}) for t in pooling.HEAD_READS_THE_FIRST_TOKEN]
                         + [("deberta-v2", {"pooler_hidden_act": "tanh"})])
def test_the_head_of_each_architecture_starts_as_the_logistic_regression(model_type, extra, tmp_path):
    """few_rows.head_from_features on each architecture that reads the mean, wrapped as train.py wraps it: its
    probabilities on the training rows are scikit-learn's logistic regression's, fitted here on what a hook on the
    head's last layer (named by hand) reads, and that is the architecture's activation (named by hand) of each
    coordinate of the mean of the tokens, scaled to at most a half, plus 1 (0 for tanh). As many classes as the
    hidden size (32): a dense layer of the head with as many outputs as classes is not its last one."""
    import datasets
    import numpy as np
    import torch
    import transformers
    from peft import LoraConfig, TaskType, get_peft_model
    from sklearn.linear_model import LogisticRegression

    from textlora import few_rows
    torch.manual_seed(0)
    model = tiny(model_type, num_labels=SMALL["hidden_size"], **extra).eval()
    head = [n for n, m in model.named_children() if n != model.base_model_prefix and list(m.parameters())]
    query = BACKBONES[model_type][0]
    model = pooling.mean_pooled(get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=2,
                                                                 target_modules=[query], modules_to_save=head)))
    rng = np.random.default_rng(0)
    n = 3 * SMALL["hidden_size"]  # 3 rows a class
    ids = rng.integers(5, 100, size=(n, 6)).tolist()
    labels = [i % SMALL["hidden_size"] for i in range(n)]
    rows = datasets.Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * 6] * n, "label": labels,
                                       "text_id": list(range(n)), "length": [6] * n})
    args = transformers.TrainingArguments(str(tmp_path), use_cpu=True, per_device_eval_batch_size=7)
    assert few_rows.head_from_features(model, rows, args, transformers.default_data_collator) == \
        "logistic regression"
    name = LAST_LAYER.get(model_type, "classifier.out_proj").split(".")
    last = model.base_model.model.get_submodule(name[0]).modules_to_save["default"]
    last = last.get_submodule(".".join(name[1:])) if len(name) > 1 else last
    read = []
    hook = last.register_forward_hook(lambda module, args, out: read.append(args[0]))
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(ids), attention_mask=torch.ones(n, 6, dtype=torch.long)).logits
        mean = pooling.base_of(model)(input_ids=torch.tensor(ids))[0][:, 0]  # what the head reads
    hook.remove()
    features = torch.cat(read)
    # the layer before the last passes each coordinate of the mean, scaled to at most a half, plus 1 where the
    # activation is near-linear there (ReLU, GELU), plus 0 where it is near 0 (tanh)
    gelu, tanh = (torch.nn.functional.gelu, 1), (torch.tanh, 0)
    activation, at = {"distilbert": (torch.relu, 1), "electra": gelu, "deberta-v2": tanh if extra else gelu}.get(
        model_type, tanh)
    torch.testing.assert_close(features, activation(mean / (2 * mean.abs().max()) + at))
    features = features.numpy() - features.numpy().mean(0)
    scale = 1 / np.linalg.norm(features, axis=1).mean()
    expected = LogisticRegression(max_iter=1000).fit(features * scale, labels).predict_proba(features * scale)
    np.testing.assert_allclose(logits.softmax(-1).numpy(), expected, atol=2e-3)  # within the solver's tolerance
