"""A word-level Hugging Face tokenizer over the replay's prompt words, for aiperf.

aiperf builds a mooncake trace's prompts by sampling token ids and decoding them with a
Hugging Face tokenizer, and counts tokens with it; nothing here may download one. This one has
exactly the words the replay writes its prompts with (console/replay/workload.py WORDS), which
are also whole tokens of the tiny GGUF (tests/replay/tiny_gguf.py): a prompt of n tokens for
aiperf is n words, which is n tokens for the server and for our replay client alike.
aiperf draws a trace's prompts from a text corpus (Shakespeare's sonnets, say); a word of it
that is not in the list is read as "water" (the unknown token is a word, not a marker), so
the decoded prompt is still words of the list, one token each. Not "the": transformers makes
the unknown token an added token, matched inside words, so "they" would count as two.

It is written as a model in a Hugging Face cache (HF_HOME=DIR, name pilothouse/replay-words),
not as a plain folder: aiperf's workers load tokenizers offline from the cache and refuse a
path (aiperf 0.13: "Repo id must be in the form 'repo_name' or 'namespace/repo_name'").

Run with aiperf's Python (tokenizers is there): python -m bench.word_tokenizer HF_HOME
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers

from console.replay.workload import WORDS

NAME = "pilothouse/replay-words"
REVISION = "0" * 40
SPECIAL = ["<s>", "</s>"]
UNKNOWN = "water"  # a word of the list that is inside no other word


def write(hf_home: str | Path) -> Path:
    """The snapshot folder of NAME under hf_home (run aiperf with HF_HOME=hf_home,
    HF_HUB_OFFLINE=1 and --tokenizer NAME)."""
    repo = Path(hf_home) / "hub" / ("models--" + NAME.replace("/", "--"))
    out = repo / "snapshots" / REVISION
    out.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    vocab = {t: i for i, t in enumerate(SPECIAL + list(dict.fromkeys(WORDS)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNKNOWN))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(SPECIAL)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "unk_token": UNKNOWN, "bos_token": "<s>",
        "eos_token": "</s>", "model_max_length": 1 << 20, "clean_up_tokenization_spaces": False}))
    return out


if __name__ == "__main__":
    print(write(sys.argv[1]))
