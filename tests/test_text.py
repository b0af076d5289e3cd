from vision2seq.data.tokenizer import detokenize, tokenize
from vision2seq.data.vocab import BOS, EOS, PAD, UNK, Vocabulary


def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("A Dog, running on the Beach.") == ["a", "dog", ",", "running", "on", "the", "beach", "."]
    assert tokenize("the man's hat!") == ["the", "man's", "hat", "!"]
    assert tokenize("  ") == []


def test_detokenize_attaches_punctuation():
    assert detokenize(["a", "dog", ",", "running", "."]) == "a dog, running."


def test_vocabulary_min_freq_specials_and_round_trip():
    captions = [["a", "dog", "runs"], ["a", "dog", "sits"], ["a", "cat"]]
    vocab = Vocabulary.build(captions, min_freq=2)
    assert vocab.words[:4] == [PAD, BOS, EOS, UNK]
    assert vocab.words[4:] == ["a", "dog"]  # by frequency; "runs"/"sits"/"cat" are rare
    ids = vocab.encode(["a", "dog", "sits"])
    assert ids == [vocab.bos_id, vocab.index["a"], vocab.index["dog"], vocab.unk_id, vocab.eos_id]
    assert vocab.decode(ids) == ["a", "dog", UNK]
    assert vocab.decode([vocab.index["a"], vocab.eos_id, vocab.index["dog"]]) == ["a"]
    assert vocab.encode(["a", "dog", "a"], max_len=2)[1:-1] == [vocab.index["a"], vocab.index["dog"]]
    assert Vocabulary(vocab.to_list()).words == vocab.words
