"""What the classification head reads: its architecture's own first token ([CLS], <s>), or the mean of the text's
tokens, which a sentence-embedding model (all-MiniLM-L6-v2, the stand-in's weights) was trained to give and which the
few-row recipe's contrastive stage trains (textlora/few_rows.py). The one place the mean is taken, for train.py,
predict.py and the load code of the model card.

transformers has no setting for it in these architectures, so it is a forward hook on the base model: the first
token's final state replaced by the mean of the states its attention mask keeps, before the head reads it. A plain
load of the adapter (AutoPeftModelForSequenceClassification) has no hook, so the card's load code calls mean_pooled,
and predict.py --merge refuses such an adapter: a merged model's head would read the first token again."""

MEAN = "mean"
FIRST = "first token"
# architectures whose head reads the first token of the base model's output, outside the base model (BERT's and
# ALBERT's pooler reads it inside, a decoder's head the last token): tests/test_pooling.py checks each by hand
HEAD_READS_THE_FIRST_TOKEN = ("distilbert", "roberta", "xlm-roberta", "deberta-v2", "electra", "mpnet")


def can_mean_pool(config):
    return getattr(config, "model_type", None) in HEAD_READS_THE_FIRST_TOKEN


def base_of(model):
    """The base model (DistilBertModel, RobertaModel, ...) in a sequence-classification model, peft-wrapped or not."""
    model = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(model, model.base_model_prefix)


def mean_pooled(model):
    """Make the model's head read the mean of the tokens (not the padding): in place, once, and returns the model."""
    import torch
    base = base_of(model)
    if getattr(base, "mean_pooled", False):
        return model
    if not can_mean_pool(base.config):
        raise ValueError(f"a {base.config.model_type} head does not read the first token: it cannot read the mean")

    def mean_first(module, args, kwargs, output):
        states = output[0]
        mask = kwargs.get("attention_mask")
        if mask is None:  # no mask given: every token is the text's, as the model itself assumes
            mask = torch.ones(states.shape[:2], device=states.device)
        kept = mask.unsqueeze(-1).float()  # summed in fp32: in bf16 a sum of hundreds of tokens loses its digits
        mean = ((states.float() * kept).sum(1) / kept.sum(1).clamp(min=1)).to(states.dtype)
        states = torch.cat([mean.unsqueeze(1), states[:, 1:]], dim=1)  # a new tensor: autograd keeps the old one
        if isinstance(output, tuple):
            return (states, *output[1:])
        output["last_hidden_state"] = states
        return output

    base.register_forward_hook(mean_first, with_kwargs=True)
    base.mean_pooled = True
    return model


def pooled(model):
    """What the model's head reads, in words: MEAN or FIRST."""
    return MEAN if getattr(base_of(model), "mean_pooled", False) else FIRST
