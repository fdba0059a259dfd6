"""Token ids of (prompt, response) for a sequence-classification reward model.

TRL's ``RewardTrainer`` drops (it does not truncate) any example longer than ``max_length``,
which on real data silently throws away the long pairs. We tokenize ourselves instead and hand
TRL ready ``chosen_ids`` / ``rejected_ids``: the prompt keeps its *end* (the question being
answered is last, e.g. the final "Human:" turn of a dialogue) and the response keeps its
*start*, with the response guaranteed at least half of the budget when both are long.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _token_spans(tokenizer: Any, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
    # verbose=False: the texts are cut to max_length later, so the "longer than the model's
    # maximum" warning would be noise.
    enc = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return [list(spans) for spans in enc["offset_mapping"]]


def _budget(n_prompt: int, n_response: int, budget: int) -> tuple[int, int]:
    """Tokens kept of prompt and response for a total of at most ``budget``."""
    if n_prompt + n_response <= budget:
        return n_prompt, n_response
    keep_r = min(n_response, max(budget - n_prompt, budget // 2))
    return min(n_prompt, budget - keep_r), keep_r


def encode_pairs(
    tokenizer: Any, prompts: Sequence[str], responses: Sequence[str], max_length: int
) -> list[list[int]]:
    """Input ids of each (prompt, response), at most ``max_length`` tokens, ending in EOS.

    The tokenizer's own pair template supplies the special tokens (for BERT:
    ``[CLS] prompt [SEP] response [SEP]``); EOS is appended when the template does not already
    end with it, because sequence-classification heads of decoder models read the last token.
    """
    n_special = tokenizer.num_special_tokens_to_add(pair=True)
    eos = tokenizer.eos_token_id
    out: list[list[int]] = []
    p_spans = _token_spans(tokenizer, prompts)
    r_spans = _token_spans(tokenizer, responses)
    for prompt, response, ps, rs in zip(prompts, responses, p_spans, r_spans):
        budget = max(2, max_length - n_special - 1)  # -1: room for an appended EOS
        keep_p, keep_r = _budget(len(ps), len(rs), budget)
        # Cut the texts at token boundaries (character offsets), then tokenize the pair: the
        # cut texts re-tokenize to the kept tokens, and the template adds the special tokens.
        p_text = prompt[ps[len(ps) - keep_p][0]:] if keep_p else ""
        r_text = response[: rs[keep_r - 1][1]] if keep_r else ""
        ids = tokenizer(p_text, r_text, truncation="longest_first", max_length=max_length)["input_ids"]
        if eos is not None and ids[-1] != eos:
            ids = ids[: max_length - 1] + [eos]
        out.append(list(ids))
    return out
