"""The head reads the mean of a text's tokens where an architecture's head reads its first token: the logits are the
head's on the mean of the final states, computed here by hand, whatever the padding."""
import pytest
from test_backbones import BACKBONES, tiny

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
