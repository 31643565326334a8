import json
import zipfile

import numpy as np
import pytest
import torch

from hasten.core.errors import ConfigError, DataError
from hasten.select import io as sio
from hasten.select.io import load_prune_input, read_text, split_documents, write_pruned
from hasten.select.per_example import Scores

KEEP = [4, 0, 2]  # deliberately unsorted; written subsets are in dataset order
SORTED = [0, 2, 4]


def _scores(n: int) -> Scores:
    return Scores(np.arange(n, dtype=float), name="el2n", higher_is="harder", seconds=1.5,
                  work={"examples_forwarded": n})


def _check_common(out, summary, n, kept=SORTED):
    assert np.load(out / "kept.npy", allow_pickle=False).tolist() == kept
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert summary["before"] == n and summary["after"] == len(kept)
    assert summary["keep_fraction"] == pytest.approx(len(kept) / n)
    assert summary["scorer"] == "el2n" and summary["direction"] == "harder"
    assert summary["scoring_seconds"] == 1.5
    s = Scores.load(out / "scores")
    assert s.values.tolist() == list(range(n)) and s.higher_is == "harder"
    for f in summary["files"]:
        assert (out / f).exists(), f
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_npz_round_trip(tmp_path):
    x = np.arange(6 * 3, dtype=np.float64).reshape(6, 3)
    y = np.array([0, 1, 2, 0, 1, 2], dtype=np.int32)
    ids = np.arange(100, 106)
    np.savez(tmp_path / "train.npz", x=x, y=y, ids=ids, classes=np.array(3))
    inp = load_prune_input(tmp_path / "train.npz")
    assert inp.kind == "npz" and len(inp) == 6 and not inp.is_text
    tx, ty = inp.data.tensors
    assert tx.dtype == torch.float32 and ty.dtype == torch.int64
    out = tmp_path / "out"
    summary = write_pruned(inp, KEEP, out, _scores(6))
    _check_common(out, summary, 6)
    with np.load(out / "train.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["x"], x[SORTED])
        np.testing.assert_array_equal(z["y"], y[SORTED])
        assert z["x"].dtype == np.float64 and z["y"].dtype == np.int32  # dtypes kept
        np.testing.assert_array_equal(z["ids"], ids[SORTED])
        assert int(z["classes"]) == 3


def test_npy_pair_round_trip(tmp_path):
    x, y = np.random.default_rng(0).normal(size=(5, 2)), np.arange(5)
    folder = tmp_path / "pair"
    folder.mkdir()
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y)
    inp = load_prune_input(folder)
    assert inp.kind == "npy" and len(inp) == 5
    out = tmp_path / "out"
    summary = write_pruned(inp, KEEP, out, _scores(5))
    _check_common(out, summary, 5)
    np.testing.assert_array_equal(np.load(out / "data" / "x.npy"), x[SORTED])
    np.testing.assert_array_equal(np.load(out / "data" / "y.npy"), y[SORTED])
    # a prefixed file names its partner
    np.save(tmp_path / "train_x.npy", x)
    np.save(tmp_path / "train_y.npy", y)
    inp = load_prune_input(tmp_path / "train_y.npy")
    write_pruned(inp, [1], tmp_path / "out2")
    np.testing.assert_array_equal(np.load(tmp_path / "out2" / "train_x.npy"), x[[1]])


def test_hf_dataset_round_trips(tmp_path):
    import datasets

    texts = [f"document number {i}" for i in range(6)]
    datasets.Dataset.from_dict({"text": texts, "label": list(range(6))}).save_to_disk(
        str(tmp_path / "hf_text"))
    inp = load_prune_input(tmp_path / "hf_text")
    assert inp.kind == "hf" and inp.is_text and inp.docs == texts
    out = tmp_path / "out"
    summary = write_pruned(inp, KEEP, out, _scores(6))
    _check_common(out, summary, 6)
    back = datasets.load_from_disk(str(out / "data"))
    assert back["text"] == [texts[i] for i in SORTED]
    assert back["label"] == SORTED
    assert load_prune_input(out / "data").docs == [texts[i] for i in SORTED]

    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    d = datasets.DatasetDict({"train": datasets.Dataset.from_dict(
        {"x": x.tolist(), "y": [0, 1, 0, 1, 0, 1]})})
    d.save_to_disk(str(tmp_path / "hf_xy"))
    inp = load_prune_input(tmp_path / "hf_xy")
    tx, ty = inp.data.tensors
    np.testing.assert_array_equal(tx.numpy(), x)
    assert ty.tolist() == [0, 1, 0, 1, 0, 1]
    write_pruned(inp, KEEP, tmp_path / "out_xy")
    assert datasets.load_from_disk(str(tmp_path / "out_xy" / "data"))["x"] == x[SORTED].tolist()
    with pytest.raises(ConfigError, match="no split 'test'"):
        load_prune_input(tmp_path / "hf_xy", split="test")


def test_text_file_lines_and_paragraphs(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_bytes("\ufeffline zero\r\nline one\r\n\r\nline two\r\nline three\r\nline four\r\n"
                  .encode("utf-8"))
    inp = load_prune_input(f)
    assert inp.kind == "text" and inp.docs == ["line zero", "line one", "line two",
                                               "line three", "line four"]
    out = tmp_path / "out"
    summary = write_pruned(inp, KEEP, out, _scores(5))
    _check_common(out, summary, 5)
    assert (out / "corpus.txt").read_text() == "line zero\nline two\nline four\n"

    inp = load_prune_input(f, text_unit="paragraph")
    assert inp.docs == ["line zero\nline one", "line two\nline three\nline four"]
    write_pruned(inp, [1], tmp_path / "out_p")
    assert load_prune_input(tmp_path / "out_p" / "corpus.txt",
                            text_unit="paragraph").docs == [inp.docs[1]]


def test_text_folder_round_trip(tmp_path):
    src = tmp_path / "books"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a0\na1\na2\n")
    (src / "sub" / "b.txt").write_text("b0\nb1\n")
    inp = load_prune_input(src)
    assert inp.docs == ["a0", "a1", "a2", "b0", "b1"]
    out = tmp_path / "out"
    summary = write_pruned(inp, KEEP, out, _scores(5))
    _check_common(out, summary, 5)
    assert (out / "data" / "a.txt").read_text() == "a0\na2\n"
    assert (out / "data" / "sub" / "b.txt").read_text() == "b1\n"
    assert load_prune_input(out / "data").docs == ["a0", "a2", "b1"]


def test_jsonl_round_trip_keeps_other_fields(tmp_path):
    recs = [{"id": i, "body": f"text {i}", "meta": {"n": i}} for i in range(5)]
    f = tmp_path / "docs.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in recs) + "\n\n")
    inp = load_prune_input(f, text_field="body")
    assert inp.kind == "jsonl" and inp.docs == [f"text {i}" for i in range(5)]
    out = tmp_path / "out"
    summary = write_pruned(inp, KEEP, out, _scores(5))
    _check_common(out, summary, 5)
    back = [json.loads(ln) for ln in (out / "docs.jsonl").read_text().splitlines()]
    assert back == [recs[i] for i in SORTED]


def test_vision_name(tmp_path):
    inp = load_prune_input("digits")
    assert inp.kind == "vision" and inp.details["num_classes"] == 10
    x, y = inp.data.tensors
    keep = np.zeros(len(inp), dtype=bool)
    keep[[3, 1, 7]] = True  # a boolean mask works too
    summary = write_pruned(inp, keep, tmp_path / "out")
    assert summary["after"] == 3 and summary["scorer"] is None
    with np.load(tmp_path / "out" / "data.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["x"], x[[1, 3, 7]].numpy())
        np.testing.assert_array_equal(z["y"], y[[1, 3, 7]].numpy())


def test_split_and_read_helpers(tmp_path):
    assert split_documents("a\n\n  \nb\nc\n\n\nd", "paragraph") == ["a", "b\nc", "d"]
    assert split_documents("a\n \nb", "line") == ["a", "b"]
    with pytest.raises(ConfigError):
        split_documents("a", "sentence")
    f = tmp_path / "t.txt"
    f.write_bytes(b"\xef\xbb\xbfone\r\ntwo\rthree")
    assert read_text(f) == "one\ntwo\nthree"


# ---------------------------------------------------------------------------- output folder


def _small_input(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("a\nb\nc\nd\ne\n")
    return load_prune_input(f)


def test_refuses_non_empty_out_dir_unless_overwrite(tmp_path):
    inp = _small_input(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    write_pruned(inp, [0], out)  # an empty existing folder is fine
    with pytest.raises(ConfigError, match="exists and is not empty"):
        write_pruned(inp, [1], out)
    assert (out / "c.txt").read_text() == "a\n"
    write_pruned(inp, [1], out, overwrite=True)
    assert (out / "c.txt").read_text() == "b\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "out"]
    with pytest.raises(ConfigError, match="would replace the input"):
        write_pruned(inp, [1], tmp_path, overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        write_pruned(inp, [1], tmp_path / "file", overwrite=True)


def test_error_mid_write_leaves_no_out_dir(tmp_path, monkeypatch):
    inp = _small_input(tmp_path)

    def boom(self, path):
        raise OSError("disk full")

    monkeypatch.setattr(Scores, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        write_pruned(inp, [0, 1], tmp_path / "out", _scores(5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]
    # replacing an existing folder: it is left exactly as it was
    monkeypatch.undo()
    write_pruned(inp, [2], tmp_path / "out")
    monkeypatch.setattr(Scores, "save", boom)
    with pytest.raises(OSError):
        write_pruned(inp, [0, 1], tmp_path / "out", _scores(5), overwrite=True)
    assert (tmp_path / "out" / "c.txt").read_text() == "c\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "out"]


def test_error_in_data_writer_leaves_no_out_dir(tmp_path, monkeypatch):
    inp = _small_input(tmp_path)

    def half_write(inp, keep, dest):
        (dest / "c.txt").write_text("partial")
        raise RuntimeError("interrupted")

    monkeypatch.setattr(sio, "_write_data", half_write)
    with pytest.raises(RuntimeError):
        write_pruned(inp, [0], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]


def test_bad_keep_indices_and_scores(tmp_path):
    inp = _small_input(tmp_path)
    for keep, msg in (([], "empty"), ([0, 5], r"span \[0, 5\]"), ([-1], "span"),
                      ([1, 1], "repeats"), ([0.5], "integers"),
                      (np.ones(4, dtype=bool), "shape")):
        with pytest.raises(DataError, match=msg):
            write_pruned(inp, keep, tmp_path / "out")
    with pytest.raises(DataError, match="have 3 values for 5 examples"):
        write_pruned(inp, [0], tmp_path / "out", _scores(3))
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- bad inputs


def test_missing_and_unknown_inputs(tmp_path):
    with pytest.raises(DataError, match="input not found: .*nope.npz"):
        load_prune_input(tmp_path / "nope.npz")
    with pytest.raises(DataError, match="dataset name: digits, fashion-mnist, mnist1d"):
        load_prune_input("cifar10")
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(ConfigError, match="unknown input format '.csv'"):
        load_prune_input(tmp_path / "data.csv")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="folder holds no HF dataset"):
        load_prune_input(tmp_path / "empty_dir")


def test_bad_arrays(tmp_path):
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(DataError, match="cannot read .*corrupt.npz"):
        load_prune_input(tmp_path / "corrupt.npz")
    good = tmp_path / "good.npz"
    np.savez(good, x=np.zeros((4, 2)), y=np.zeros(4))
    data = good.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated.npz"):
        load_prune_input(tmp_path / "truncated.npz")
    np.savez(tmp_path / "mismatch.npz", x=np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(DataError, match="x has 4 examples but y has 3"):
        load_prune_input(tmp_path / "mismatch.npz")
    np.savez(tmp_path / "nokey.npz", inputs=np.zeros((4, 2)), y=np.zeros(4))
    with pytest.raises(DataError, match=r"no array 'x' \(has: inputs, y\)"):
        load_prune_input(tmp_path / "nokey.npz")
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}] * 4, dtype=object), y=np.zeros(4))
    with pytest.raises(DataError, match="objects.npz"):
        load_prune_input(tmp_path / "objects.npz")
    np.savez(tmp_path / "strings.npz", x=np.array(["a", "b"]), y=np.zeros(2))
    with pytest.raises(DataError, match="x has dtype <U1, expected numbers"):
        load_prune_input(tmp_path / "strings.npz")
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 2)), y=np.zeros(0))
    with pytest.raises(DataError, match="no examples"):
        load_prune_input(tmp_path / "empty.npz")
    np.save(tmp_path / "lonely_x.npy", np.zeros(3))
    with pytest.raises(DataError, match="lonely_y.npy"):
        load_prune_input(tmp_path / "lonely_x.npy")
    np.save(tmp_path / "weights.npy", np.zeros(3))
    with pytest.raises(ConfigError, match="<prefix>x.npy"):
        load_prune_input(tmp_path / "weights.npy")
    zipfile.ZipFile(tmp_path / "emptyzip.npz", "w").close()
    with pytest.raises(DataError, match="no array 'x'"):
        load_prune_input(tmp_path / "emptyzip.npz")


def test_bad_jsonl(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"text": "ok"}\n\n{"text": "fine"\n')
    with pytest.raises(DataError, match=r"bad.jsonl: line 3 is not valid JSON"):
        load_prune_input(f)
    f.write_text('{"text": "ok"}\n{"body": "no text"}\n')
    with pytest.raises(DataError, match=r"line 2 has no field 'text'"):
        load_prune_input(f)
    f.write_text('{"text": "ok"}\n{"text": 7}\n')
    with pytest.raises(DataError, match=r"line 2: field 'text' is not a string"):
        load_prune_input(f)
    f.write_text('["text"]\n')
    with pytest.raises(DataError, match="line 1 is not a JSON object"):
        load_prune_input(f)
    f.write_text("\n \n")
    with pytest.raises(DataError, match="no records"):
        load_prune_input(f)


def test_bad_text(tmp_path):
    f = tmp_path / "latin1.txt"
    f.write_bytes("first line\nsecond line\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt: line 3 is not valid UTF-8 \(byte 0xe9"):
        load_prune_input(f)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "good.txt").write_text("fine\n")
    (folder / "bad.txt").write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(DataError, match=r"bad.txt: line 2 is not valid UTF-8"):
        load_prune_input(folder)
    (tmp_path / "blank.txt").write_text("\n   \n\n")
    with pytest.raises(DataError, match="no documents"):
        load_prune_input(tmp_path / "blank.txt")
