"""The base model's limits and needs: which layers LoRA can target, a padding token for decoders, and the longest
input it takes."""
from . import fail


# Each architecture's attention query projection, by its layers' name; a fused query-key-value layer where it has no
# query of its own (ModernBERT, Phi-3, GPT-2). LoRA goes on the first the model has when TARGET_MODULES is left at
# the seed's q_lin (DistilBERT's) and the model has no q_lin.
QUERY_LAYERS = ("q_lin", "query", "query_proj", "q_proj", "q", "Wqkv", "qkv_proj", "c_attn", "query_key_value",
                "in_proj")
SEED_TARGETS = ["q_lin"]


def target_modules(model, cfg):
    """The layers LoRA goes on (peft's target_modules) and, where they are not the ones named, why: TARGET_MODULES
    are names of the model's linear layers (GPT-2's Conv1D are linear layers too), or peft's all-linear."""
    import torch
    from transformers.pytorch_utils import Conv1D
    # the head (the layers outside the base model) trains in full, so it is no LoRA target
    linear = sorted({n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, Conv1D))
                     and n.startswith(model.base_model_prefix + ".")})
    if cfg.target_modules == ["all-linear"]:
        return "all-linear", None  # peft's all-linear is a name, not a list
    if cfg.target_modules == SEED_TARGETS and "q_lin" not in linear and \
            (query := next((q for q in QUERY_LAYERS if q in linear), None)):
        kind = getattr(model.config, "model_type", "this")
        return [query], f"TARGET_MODULES q_lin is DistilBERT's query; {kind}'s attention query projection is {query}"
    if missing := [t for t in cfg.target_modules if t not in linear]:
        fail(f"--target_modules {' '.join(missing)} match nothing in {cfg.model_name!r}; "
             f"its linear layers are: {' '.join(linear)} (or all-linear)")
    return list(cfg.target_modules), None


def give_a_padding_token(tokenizer, config, cfg):
    """A batch of texts of several lengths is padded, and a decoder's classifier reads the last token before the
    padding: a tokenizer without a padding token pads with its end-of-text token, and the model is told which (also
    where its config named another). Returns whether the model's padding token is not its base config's."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            fail(f"model {cfg.model_name!r}: its tokenizer has no padding token and no end-of-text token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    base_pad, config.pad_token_id = config.pad_token_id, tokenizer.pad_token_id
    return base_pad != config.pad_token_id  # the base config says otherwise: whoever loads the adapter must be told


def within_reach(max_length, config, tokenizer):
    """MAX_LENGTH, lowered to what the model takes: its position embeddings, and its tokenizer's limit where it has
    one (RoBERTa's embeddings have 514 positions and take 512 tokens)."""
    reserved = reserved_positions(config)
    limits = [getattr(config, key, None) and getattr(config, key) - reserved
              for key in ("max_position_embeddings", "n_positions")]
    limits.append(tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else None)  # none: 1e30
    return min([max_length, *(n for n in limits if n)])


def reserved_positions(config):
    """Encoders in RoBERTa's style (RoBERTa, XLM-R, CamemBERT, ...) number positions from padding_idx + 1: that
    many of their positions never hold a token. They are the models whose code has
    create_position_ids_from_input_ids."""
    import importlib
    import inspect
    name = str(getattr(config, "model_type", "")).replace("-", "_")
    try:
        module = importlib.import_module(f"transformers.models.{name}.modeling_{name}")
    except ImportError:  # remote code, or no such module: nothing known to reserve
        return 0
    offset = hasattr(module, "create_position_ids_from_input_ids") or any(
        hasattr(c, "create_position_ids_from_input_ids") for _, c in inspect.getmembers(module, inspect.isclass))
    return (config.pad_token_id or 0) + 1 if offset else 0


def window_stride(cfg, max_length, tokenizer):
    """STRIDE, or where it is None a quarter of max_length: the tokens each window shares with the next. A window holds
    max_length tokens with the special ones, so the stride must leave it some new tokens."""
    stride = cfg.stride if cfg.stride is not None else max_length // 4
    if cfg.long_texts == "windows" and not tokenizer.is_fast:  # windows are the fast tokenizers' overflow
        fail(f"--long_texts windows needs a fast tokenizer, and {cfg.model_name!r} has none; use --long_texts "
             f"head_tail or truncate")
    room = max_length - tokenizer.num_special_tokens_to_add()
    if cfg.long_texts == "windows" and not 0 <= stride < room:
        fail(f"--stride {stride}: windows of {max_length} tokens ({room} of the text's) need a stride from 0 to "
             f"{room - 1}")
    return stride
