"""Dataset label checks (parity.evaluation.dataset) exactly: every refusal's message and hint, the layouts with what
they record (root, layout, label evidence), list-file parsing (comments, blank lines, spaces in paths, undecodable
bytes, line numbers), wnid evidence and its bounds, synset lists, the stratified subset and the content fingerprint.
Images are never decoded here: empty files stand in for them."""
import numpy as np
import pytest

from parity.evaluation.dataset import Dataset, DatasetError, check_wnids, open_dataset

pytestmark = pytest.mark.judging

ORDER = [f"n{i:08d}" for i in range(1000)]        # a stand-in for the 1000 sorted ILSVRC2012 wnids


def touch(d, *names):
    d.mkdir(parents=True, exist_ok=True)
    for n in names:
        (d / n).write_bytes(b"")
    return [d / n for n in names]


def synsets(path, order=ORDER):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{w} class {i}\n" for i, w in enumerate(order)))
    return path


def refusal(fn, *a, **kw):
    with pytest.raises(DatasetError) as e:
        fn(*a, **kw)
    return str(e.value), e.value.hint


# --- label mapping -------------------------------------------------------------------------------------------------

def val_dir(tmp_path, labels):
    names = [f"img{i}.JPEG" for i in range(len(labels))]
    touch(tmp_path / "val", *names)
    (tmp_path / "val_label.txt").write_text("".join(f"{n} {y}\n" for n, y in zip(names, labels)))
    return tmp_path


def test_empty_label_file(tmp_path):
    touch(tmp_path / "val")
    (tmp_path / "val_label.txt").write_text("# nothing yet\n\n")
    assert refusal(open_dataset, tmp_path) == ("val_label.txt: no labeled images", "")


def test_a_single_image_is_a_dataset(tmp_path):
    ds = open_dataset(val_dir(tmp_path, [0]))
    assert ds.labels.tolist() == [0] and len(ds) == 1


def test_1_based_or_1001_class_labels_message_and_hint(tmp_path):
    assert refusal(open_dataset, val_dir(tmp_path, [1, 1000])) == (
        "val_label.txt: labels run 1..1000: 1-based, or a 1001-class mapping with 0 = background",
        "pass --label-base 1 if the file counts classes from 1 (TF-slim/TFLite files include a background class 0: "
        "subtract 1 from every label)")


def test_a_1001_class_file_with_background_0_is_refused(tmp_path):
    """0..1000: index 1000 does not exist in the 1000-class mapping even though the file has a 0."""
    assert refusal(open_dataset, val_dir(tmp_path, [0, 1000])) == (
        "val_label.txt: labels span 0..1000, outside 0..999: not the ILSVRC2012 1000-class mapping",
        "a 1001-class file (index 0 = background) needs --label-base 1")


def test_outside_the_range_after_label_base_1_says_so(tmp_path):
    d = val_dir(tmp_path, [1, 1001])
    assert refusal(open_dataset, d, label_base=1)[0] == (
        "val_label.txt: labels span 0..1000 after --label-base 1, outside 0..999: not the ILSVRC2012 1000-class mapping")
    assert refusal(open_dataset, d, label_base=0)[0] == (
        "val_label.txt: labels span 1..1001, outside 0..999: not the ILSVRC2012 1000-class mapping")


def test_no_label_0_message_and_hint(tmp_path):
    assert refusal(open_dataset, val_dir(tmp_path, [5, 7, 998])) == (
        "val_label.txt: no image has label 0 (labels span 5..998): a 1-based label file cannot be told from a 0-based "
        "one over a subset of classes, and an off-by-one mapping scores ~0 %",
        "pass --label-base 0 or --label-base 1 to say how the file counts, or put the standard synset list "
        "(synset_words.txt) beside the data so file names can be checked")


def test_label_base_must_be_0_or_1(tmp_path):
    assert refusal(open_dataset, val_dir(tmp_path, [0]), label_base=2) == ("label base 2: must be 0 or 1", "")


# --- wnid evidence ---------------------------------------------------------------------------------------------------

def wnid_names(classes):
    return [f"{ORDER[c]}_{i}.JPEG" for i, c in enumerate(classes)]


def test_wnid_evidence_ignores_files_without_a_wnid():
    names = [*wnid_names([3, 10]), "ILSVRC2012_val_00000001.JPEG", "n123.JPEG"]
    assert check_wnids(names, np.array([3, 10, 77, 78]), ORDER, "x") == "labels confirmed by the wnids in 2 file names"
    assert check_wnids(["a.JPEG", "b.JPEG"], np.array([1, 2]), ORDER, "x") is None


def test_wnid_in_the_directory_name_counts():
    assert check_wnids([f"val/{ORDER[42]}/img.JPEG"], np.array([42]), ORDER, "x") == (
        "labels confirmed by the wnids in 1 file names")


def test_off_by_plus_one_message_and_hint():
    classes = [3, 10, 500, 998]
    assert refusal(check_wnids, wnid_names(classes), np.array(classes) + 1, ORDER, "list.txt") == (
        f"list.txt: labels are off by +1: 4 of 4 images carry the label of wnid index +1 (e.g. {ORDER[3]}_0.JPEG)",
        "pass --label-base 1")


def test_off_by_minus_one_message_and_hint():
    classes = [3, 10, 500, 998]
    assert refusal(check_wnids, wnid_names(classes), np.array(classes) - 1, ORDER, "list.txt") == (
        f"list.txt: labels are off by -1: 4 of 4 images carry the label of wnid index -1 (e.g. {ORDER[3]}_0.JPEG)",
        "the file counts from -1: fix the label file")


def test_shift_needs_95_percent_of_the_files():
    classes = list(range(20, 40))
    labels = np.array(classes) + 1
    labels[7] = classes[7]                                   # 19 of 20 shifted: exactly 95 %
    assert refusal(check_wnids, wnid_names(classes), labels, ORDER, "x")[0].startswith(
        "x: labels are off by +1: 19 of 20 images")
    labels[8] = classes[8]                                   # 18 of 20: a mismatch, not a shift
    assert refusal(check_wnids, wnid_names(classes), labels, ORDER, "x") == (
        "x: 18 of 20 labels disagree with the WordNet id in the file name (not the ILSVRC2012 sorted-wnid order?)",
        "labels must be indices into the sorted list of the 1000 ILSVRC2012 wnids")


# --- list files ------------------------------------------------------------------------------------------------------

def test_list_file_comments_blank_lines_spaces_and_latin1(tmp_path):
    touch(tmp_path / "my imgs", "a b.jpg", "c.jpg", "d.jpg")
    (tmp_path / "list.txt").write_bytes(
        b"# header\n"
        b"my imgs/a b.jpg 0\n"
        b"\n"
        b"   # indented comment, caf\xe9\n"
        b"my imgs/c.jpg,5\n"
        b"  \n"
        b"my imgs/d.jpg\t7\n")
    ds = open_dataset(tmp_path / "list.txt")
    assert ds.labels.tolist() == [0, 5, 7] and ds.labels.dtype == np.int64
    assert ds.paths == (tmp_path / "my imgs/a b.jpg", tmp_path / "my imgs/c.jpg", tmp_path / "my imgs/d.jpg")
    assert (ds.root, ds.layout, ds.label_evidence) == (tmp_path, "list file list.txt", "")


def test_list_file_errors_name_the_line(tmp_path):
    f = tmp_path / "list.txt"
    f.write_text("# c\na.jpg 0\nlonely\n")
    assert refusal(open_dataset, f) == ("list.txt:3: expected 'PATH LABEL', got 'lonely'", "")
    long = "x" * 100
    f.write_text(f"{long}\n")
    assert refusal(open_dataset, f)[0] == f"list.txt:1: expected 'PATH LABEL', got {long[:80]!r}"
    f.write_text("a.jpg 0\nmy dir/b c.jpg seven\n")
    assert refusal(open_dataset, f)[0] == "list.txt:2: label 'seven' is not an integer"


def test_all_listed_images_missing_message_and_hint(tmp_path):
    (tmp_path / "list.txt").write_text("a.jpg 0\nb.jpg 1\n")
    assert refusal(open_dataset, tmp_path / "list.txt") == (
        f"list.txt: none of the 2 listed images exists (first: {tmp_path / 'a.jpg'})",
        "paths in a list/label file are relative to the file's directory (val/ for val_label.txt)")


def test_some_missing_images_are_not_a_refusal(tmp_path):
    touch(tmp_path, "b.jpg")
    (tmp_path / "list.txt").write_text("a.jpg 0\nb.jpg 1\n")
    ds = open_dataset(tmp_path / "list.txt")
    assert len(ds) == 2 and ds.missing() == [tmp_path / "a.jpg"]


def test_synset_list_beside_a_list_file_or_one_level_up_checks_it(tmp_path):
    """No label 0 and no --label-base: refused, unless the wnids in the names confirm the mapping against a synset
    list beside the list file or in its parent directory; a shifted file is caught the same way."""
    sub = tmp_path / "data"
    names = wnid_names([3, 10, 500])
    touch(sub, *names)
    lst = sub / "list.txt"
    lst.write_text("".join(f"{n} {c}\n" for n, c in zip(names, [3, 10, 500])))
    with pytest.raises(DatasetError, match="no image has label 0"):
        open_dataset(lst)
    for where in (tmp_path, sub):
        syn = synsets(where / "synset_words.txt")
        ds = open_dataset(lst)
        assert ds.label_evidence == "labels confirmed by the wnids in 3 file names" and ds.root == sub
        syn.unlink()
    synsets(tmp_path / "synset_words.txt")
    lst.write_text("".join(f"{n} {c + 1}\n" for n, c in zip(names, [3, 10, 500])))
    assert refusal(open_dataset, lst, label_base=0)[0].startswith("list.txt: labels are off by +1: 3 of 3")


def test_explicit_synset_list(tmp_path):
    names = wnid_names([3, 10])
    touch(tmp_path / "d", *names)
    (tmp_path / "d" / "list.txt").write_text(f"{names[0]} 3\n{names[1]} 10\n")
    syn = synsets(tmp_path / "elsewhere" / "my_synsets.txt")
    ds = open_dataset(tmp_path / "d" / "list.txt", synsets=syn)
    assert ds.label_evidence == "labels confirmed by the wnids in 2 file names"
    assert refusal(open_dataset, tmp_path / "d" / "list.txt", synsets=tmp_path / "nope.txt")[0] == (
        f"synset list not found: {tmp_path / 'nope.txt'}")


def test_synset_lists_that_are_not_the_1000_wnids(tmp_path):
    names = wnid_names([3])
    touch(tmp_path, *names)
    (tmp_path / "list.txt").write_text(f"{names[0]} 3\n")
    syn = synsets(tmp_path / "s.txt", ORDER[:999])
    assert refusal(open_dataset, tmp_path / "list.txt", synsets=syn)[0] == (
        "s.txt: 999 lines, expected the 1000 ILSVRC2012 wnids in order")
    syn = synsets(tmp_path / "s.txt", ["background", *ORDER[1:]])
    assert refusal(open_dataset, tmp_path / "list.txt", synsets=syn)[0] == (
        "s.txt: 1000 lines, expected the 1000 ILSVRC2012 wnids in order")
    syn.write_bytes("".join(f"{w} caf\xe9\n" for w in ORDER).encode("latin-1"))   # not UTF-8: still readable
    assert open_dataset(tmp_path / "list.txt", synsets=syn).label_evidence.startswith("labels confirmed")


# --- the val/ + label file layout ------------------------------------------------------------------------------------

def test_val_layout_records_root_layout_and_source(tmp_path):
    ds = open_dataset(val_dir(tmp_path, [0, 3]))
    assert (ds.root, ds.layout, ds.label_evidence) == (tmp_path, "val/ + val_label.txt", "")
    assert ds.paths == (tmp_path / "val" / "img0.JPEG", tmp_path / "val" / "img1.JPEG")


def test_label_file_without_a_val_directory(tmp_path):
    touch(tmp_path, "a.JPEG")
    (tmp_path / "val.txt").write_text("a.JPEG 0\n")
    ds = open_dataset(tmp_path)
    assert ds.paths == (tmp_path / "a.JPEG",) and ds.layout == f"{tmp_path.name}/ + val.txt"


def test_val_layout_uses_the_synset_list_beside_it(tmp_path):
    names = wnid_names([3, 10])
    touch(tmp_path / "val", *names)
    (tmp_path / "val_label.txt").write_text(f"{names[0]} 3\n{names[1]} 10\n")
    synsets(tmp_path / "synset_words.txt")
    assert open_dataset(tmp_path).label_evidence == "labels confirmed by the wnids in 2 file names"
    syn = synsets(tmp_path / "elsewhere.txt")
    (tmp_path / "synset_words.txt").unlink()
    assert open_dataset(tmp_path, synsets=syn).label_evidence == "labels confirmed by the wnids in 2 file names"


def test_class_name_files_beside_the_label_file(tmp_path):
    d = val_dir(tmp_path, [0])
    first = "background class with a name longer than forty characters, cut"
    (d / "synset_words.txt").write_text(first + "\n" + "".join(f"{w} c\n" for w in ORDER))
    assert refusal(open_dataset, d) == (
        f"synset_words.txt: 1001 class names (first: {first[:40]!r}): a 1001-class list",
        "use the 1000-class synset list; index 0 'background' shifts every class by one")
    (d / "synset_words.txt").unlink()
    (d / "label.txt").write_text("".join(f"class {i}\n" for i in range(999)))
    assert refusal(open_dataset, d) == ("label.txt: 999 class names, expected 1000", "")
    (d / "label.txt").write_bytes(b"".join(b"caf\xe9 %d\n" % i for i in range(1000)))   # 1000 names, latin-1
    assert open_dataset(d).labels.tolist() == [0]


# --- ImageFolder -----------------------------------------------------------------------------------------------------

def test_imagefolder_of_all_1000_synsets(tmp_path):
    for w in ORDER:
        touch(tmp_path / w)
    touch(tmp_path / ORDER[0], "b.JPEG", "a.jpeg", "notes.txt")
    touch(tmp_path / ORDER[999], "z.PNG")
    ds = open_dataset(tmp_path)
    assert (ds.root, ds.layout, ds.label_evidence) == (tmp_path, "ImageFolder", "labels from synset directories")
    assert ds.paths == (tmp_path / ORDER[0] / "a.jpeg", tmp_path / ORDER[0] / "b.JPEG", tmp_path / ORDER[999] / "z.PNG")
    assert ds.labels.tolist() == [0, 0, 999] and ds.labels.dtype == np.int64


def test_imagefolder_subset_with_the_synset_list_beside_it(tmp_path):
    for w in (ORDER[5], ORDER[700]):
        touch(tmp_path / w, "x.JPEG")
    synsets(tmp_path / "synset_words.txt")
    assert open_dataset(tmp_path).labels.tolist() == [5, 700]


def test_imagefolder_subset_errors(tmp_path):
    for w in (ORDER[5], "n99999991", "n99999992", "n99999993", "n99999994"):
        touch(tmp_path / w, "x.JPEG")
    syn = synsets(tmp_path / "s.txt")
    assert refusal(open_dataset, tmp_path, synsets=syn) == (
        f"ImageFolder {tmp_path}: synsets not in the list: ['n99999991', 'n99999992', 'n99999993']", "")
    assert refusal(open_dataset, tmp_path) == (
        f"ImageFolder {tmp_path}: 5 synset directories, not 1000: their sorted order is not the ILSVRC2012 class order",
        "pass the standard synset list (synset_words.txt)")


def test_unknown_layout_and_missing_path(tmp_path):
    touch(tmp_path / "photos", "a.jpg")
    assert refusal(open_dataset, tmp_path) == (
        f"{tmp_path}: no val_label.txt/val.txt/labels.txt of 'FILE INDEX' lines, no synset directories: not a "
        "known ImageNet layout", "see README 'Evaluation' for the accepted layouts")


def test_a_directory_with_labels_txt_pairs_is_a_dataset(tmp_path):
    """The layout of ../shared/realdata/images/imagenet_sample_1000: images + labels.txt of 'FILE INDEX' lines."""
    touch(tmp_path, "n00000000_a.JPEG", "n00000007_b.JPEG")
    (tmp_path / "labels.txt").write_text("n00000000_a.JPEG 0\nn00000007_b.JPEG 7\n")
    ds = open_dataset(tmp_path)
    assert ds.labels.tolist() == [0, 7] and ds.paths == (tmp_path / "n00000000_a.JPEG", tmp_path / "n00000007_b.JPEG")
    assert ds.root == tmp_path


def test_a_labels_txt_of_class_names_is_not_a_label_file(tmp_path):
    """TFLite's labels.txt lists class names ('background', 'tench', ...): not pairs, so the directory is refused
    as no known layout rather than with a parse error about that file."""
    touch(tmp_path, "a.jpg")
    (tmp_path / "labels.txt").write_text("background\ntench\n")
    msg, _ = refusal(open_dataset, tmp_path)
    assert msg.startswith(f"{tmp_path}: no val_label.txt/val.txt/labels.txt") and "not a known ImageNet layout" in msg
    assert refusal(open_dataset, tmp_path / "nope") == (f"dataset not found: {tmp_path / 'nope'}",
                                                        "set MBV2_PARITY_IMAGENET or pass --data")


# --- subset ----------------------------------------------------------------------------------------------------------

def synthetic(tmp_path, labels, evidence="confirmed"):
    labels = np.asarray(labels)
    return Dataset(tmp_path, "synthetic", tuple(tmp_path / f"{i}.JPEG" for i in range(len(labels))), labels, evidence)


def test_subset_of_everything_or_nothing_is_the_dataset(tmp_path):
    ds = synthetic(tmp_path, [0, 1, 2, 0])
    assert ds.subset(0) is ds and ds.subset(4) is ds and ds.subset(9) is ds


def test_subset_records_what_it_is(tmp_path):
    ds = synthetic(tmp_path, np.repeat(np.arange(10), 3))
    sub = ds.subset(7, seed=3)
    assert (sub.root, sub.layout, sub.label_evidence, len(sub)) == (tmp_path, "synthetic[subset 7, seed 3]",
                                                                     "confirmed", 7)
    assert ds.subset(7).paths == ds.subset(7, seed=0).paths and ds.subset(7).layout == "synthetic[subset 7, seed 0]"
    assert all(ds.labels[int(p.stem)] == y for p, y in zip(sub.paths, sub.labels.tolist()))
    assert list(sub.paths) == sorted(sub.paths, key=lambda p: int(p.stem))       # in dataset order


def test_subset_when_classes_run_out_unevenly(tmp_path):
    """One image of class 0, twelve of class 1, two of class 2: 8 images take every class's images round-robin
    until the small classes run out, and never more than the limit (even mid-round)."""
    ds = synthetic(tmp_path, [1] * 6 + [0] + [1] * 6 + [2, 2])
    for seed in range(5):
        sub = ds.subset(8, seed=seed)
        assert len(sub) == 8 and np.bincount(sub.labels, minlength=3).tolist() == [1, 5, 2]
        assert len(set(sub.paths)) == 8
    sub = ds.subset(2, seed=1)
    assert len(sub) == 2 and len(set(sub.labels.tolist())) == 2


def test_seeds_pick_different_images(tmp_path):
    ds = synthetic(tmp_path, np.repeat(np.arange(4), 25))
    picks = {ds.subset(8, seed=s).paths for s in range(4)}
    assert len(picks) == 4


# --- content fingerprint ---------------------------------------------------------------------------------------------

def test_content_fingerprint_follows_the_bytes_behind_the_paths(tmp_path):
    paths = touch(tmp_path, "a.JPEG", "b.JPEG")
    ds = Dataset(tmp_path, "x", tuple(paths), np.array([0, 1]))
    fp = ds.content_fingerprint()
    assert len(fp) == 16 and int(fp, 16) >= 0 and fp == ds.content_fingerprint()
    relabeled = Dataset(tmp_path, "x", tuple(paths), np.array([0, 2]))
    assert relabeled.content_fingerprint() != fp
    paths[0].write_bytes(b"new bytes")                        # other bytes behind the same path
    changed = ds.content_fingerprint()
    assert changed != fp and changed == ds.content_fingerprint()
    paths[1].unlink()                                         # a missing file is part of the key
    missing = ds.content_fingerprint()
    assert missing not in (fp, changed) and missing == ds.content_fingerprint()
    assert ds.missing() == [paths[1]]
