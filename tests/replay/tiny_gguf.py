"""A tiny llama-architecture GGUF with random weights, written at test time (gguf package).

What for: llama.cpp's server running a real model on CPU, so the replay tests and the bench
see real tokenisation, real streaming and real timings in seconds, with nothing downloaded.
The answers are nonsense; their token counts are real.

Shape: 2 layers, 64 wide, a SentencePiece-style vocabulary of the replay's prompt words
(console/replay/workload.py WORDS, so a synthetic prompt is about one token per word), every
left prefix of them (SentencePiece merges a word out of its prefixes), the 256 byte tokens
(any other text falls back to bytes) and <unk>, <s>, </s>.

Answers are whole words and run to max_tokens: dimension 0 of every embedding is a constant
that no layer writes to (the rows of the output projections for it are zero), so after the
final norm it is always positive; the output row of every token that is not a whole word
(control, byte, prefix) has a large negative weight there. So </s> is never sampled, and each
streamed chunk is one word.

Run with the model server's Python (numpy and gguf there):
    python -m tests.replay.tiny_gguf OUT [EMBED LAYERS]
(the bench asks for a wider, deeper one, so that a request takes the server long enough for
the clients' own overhead per request to be small beside it).
"""

from __future__ import annotations

import sys

import gguf
import numpy as np

from console.replay.workload import WORDS

EMBED, LAYERS, HEADS, CONTEXT = 64, 2, 4, 4096
TEMPLATE = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"


def vocabulary() -> tuple[list[str], list[float], list[int], set[int]]:
    """Pieces, scores, token types, and the ids of the whole words (the only ones sampled)."""
    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + \
        [gguf.TokenType.BYTE] * 256
    words: set[int] = set()
    seen = set(pieces)
    for word in ["\u2581" + w for w in dict.fromkeys(WORDS)]:
        for end in range(1, len(word) + 1):
            piece = word[:end]
            if piece not in seen:
                seen.add(piece)
                pieces.append(piece)
                types.append(gguf.TokenType.NORMAL)
            if end == len(word):
                words.add(pieces.index(piece))
    scores = [0.0] * 259 + [float(len(p)) for p in pieces[259:]]  # longer pieces merge first
    return pieces, scores, [int(t) for t in types], words


def write(path: str, seed: int = 1, embed: int = EMBED, layers: int = LAYERS) -> None:
    rng = np.random.default_rng(seed)
    ff = 2 * embed
    pieces, scores, types, words = vocabulary()
    vocab = len(pieces)

    def weights(*shape: int, scale: float = 0.08) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = gguf.GGUFWriter(path, "llama")
    w.add_name("pilothouse-tiny-random")
    w.add_context_length(CONTEXT)
    w.add_embedding_length(embed)
    w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(HEADS)
    w.add_head_count_kv(HEADS)
    w.add_rope_dimension_count(embed // HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(pieces)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(TEMPLATE)

    table = weights(vocab, embed, scale=0.5)
    table[:, 0] = 4.0  # the constant dimension (see the module)
    out = weights(vocab, embed, scale=0.3)
    out[:, 0] = 0.0
    out[[i for i in range(vocab) if i not in words], 0] = -60.0
    w.add_tensor("token_embd.weight", table)
    w.add_tensor("output_norm.weight", np.ones(embed, dtype=np.float32))
    w.add_tensor("output.weight", out)
    for n in range(layers):
        attn_out, down = weights(embed, embed), weights(embed, ff)
        attn_out[0, :] = 0.0  # nothing writes to dimension 0
        down[0, :] = 0.0
        for name, tensor in (("attn_norm", np.ones(embed, dtype=np.float32)),
                             ("attn_q", weights(embed, embed)), ("attn_k", weights(embed, embed)),
                             ("attn_v", weights(embed, embed)), ("attn_output", attn_out),
                             ("ffn_norm", np.ones(embed, dtype=np.float32)),
                             ("ffn_gate", weights(ff, embed)), ("ffn_up", weights(ff, embed)),
                             ("ffn_down", down)):
            w.add_tensor(f"blk.{n}.{name}.weight", tensor)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    sizes = [int(x) for x in sys.argv[2:4]]
    write(sys.argv[1], 1, *sizes)
