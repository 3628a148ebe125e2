"""Hugging Face text-tower directories made here, offline, for multilingual models.

The real `xlm-roberta-base` files (config.json, tokenizer.json) come from the hub, which tests
never reach. An XLM-R tokenizer is a SentencePiece Unigram model, so the same kind of tokenizer
is trained here on a small corpus of English and Chinese captions, saved as
`XLMRobertaTokenizer` (the class the real files load as), beside an `XLMRobertaConfig`: a tiny
one for `clipmesh-tiny-xlm-roberta`, or xlm-roberta-base's published shape for measuring the
real architecture with random weights (speed does not depend on which ids the tokens are,
since every text is padded to the context length).
"""

from __future__ import annotations

import json
from pathlib import Path

# English and Chinese captions of the demo library's kind of footage, so both scripts get
# tokens of their own.
CORPUS = (
    "a red car drives down the street at night",
    "a dog runs on the beach at sunset",
    "two people talk in a kitchen",
    "dragon boats race on the river",
    "a girl in hanfu under cherry blossoms",
    "snow falls on the glacier and the mountains",
    "a desert with sand dunes under the sun",
    "一辆红色的汽车在夜晚的街上行驶",
    "一只狗在日落时的海滩上奔跑",
    "两个人在厨房里说话",
    "龙舟竞渡",
    "穿汉服的女孩在樱花树下",
    "雪落在冰川和群山上",
    "阳光下的沙漠和沙丘",
)
# xlm-roberta-base's config.json, as its Hugging Face repository publishes it.
XLM_ROBERTA_BASE = {
    "vocab_size": 250002,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
}
# xlm-roberta-large's, for xlm-roberta-large-ViT-H-14.
XLM_ROBERTA_LARGE = {
    **XLM_ROBERTA_BASE,
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
}
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 81,
}


def write_xlm_roberta_dir(out: Path, shape: dict | None = None, *, vocab_size: int = 300) -> Path:
    """Writes config.json and the tokenizer files of an XLM-R text tower into `out`.

    Args:
        shape: XLMRobertaConfig fields (TINY when None); its vocab_size, if any, is kept so
            the tower has the real embedding table.
        vocab_size: How many pieces the tokenizer learns from the corpus (at most).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import XLMRobertaConfig, XLMRobertaTokenizer

    out.mkdir(parents=True, exist_ok=True)
    pieces = Tokenizer(models.Unigram())
    pieces.pre_tokenizer = pre_tokenizers.Metaspace()
    pieces.train_from_iterator(
        CORPUS,
        trainers.UnigramTrainer(
            vocab_size=vocab_size,
            unk_token="<unk>",
            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],  # XLM-R's ids 0-4
        ),
    )
    vocab = [tuple(piece) for piece in json.loads(pieces.to_str())["model"]["vocab"]]
    tokenizer = XLMRobertaTokenizer(vocab=vocab)
    tokenizer.save_pretrained(out)
    fields = dict(shape or TINY)
    fields.setdefault("vocab_size", len(tokenizer))
    XLMRobertaConfig(pad_token_id=1, bos_token_id=0, eos_token_id=2, **fields).save_pretrained(out)
    return out
