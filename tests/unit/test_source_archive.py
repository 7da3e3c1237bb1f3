"""Function source archives as Dispatch clients send them, and the entries that must never be unpacked."""
import gzip
import io
import os
import tarfile

import pytest

from dispatch.errors import Rejected
from dispatch.schemas import source


def _archive(*entries: tarfile.TarInfo | tuple[str, bytes], terminated: bool = True) -> bytes:
    buffer = io.BytesIO()
    tar = tarfile.open(fileobj=buffer, mode="w")
    for entry in entries:
        if isinstance(entry, tarfile.TarInfo):
            tar.addfile(entry)
        else:
            name, content = entry
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    raw = buffer.getvalue()  # before close(): no end-of-archive blocks, like some Dispatch clients send
    tar.close()
    return gzip.compress(buffer.getvalue() if terminated else raw)


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def test_archive_whose_last_member_is_not_padded_is_read_whole(tmp_path):
    """What Go's tar.Writer leaves when it is never closed (Dispatch's CLI): the last member's
    data stops at its size, with neither the padding to 512 bytes nor the end-of-archive blocks."""
    body = b"def handle(ctx, payload):\n    return payload\n"
    padded = gzip.decompress(_archive(("./lib/words.txt", b"winterfell\n"), (".//hello.py", body), terminated=False))
    unpadded = padded[:len(padded) - (-len(body) % tarfile.BLOCKSIZE)]
    assert len(unpadded) % tarfile.BLOCKSIZE != 0

    names = source.extract(gzip.compress(unpadded), tmp_path)

    assert sorted(names) == ["hello.py", "lib/words.txt"]
    assert (tmp_path / "hello.py").read_bytes() == body


def test_archive_cut_inside_a_member_is_refused(tmp_path):
    padded = gzip.decompress(_archive(("hello.py", b"x" * 2000), terminated=False))

    with pytest.raises(Rejected, match="invalid source archive"):
        source.validate(gzip.compress(padded[:1200]))


def test_pack_then_extract_round_trips_a_directory_at_the_archive_root(tmp_path):
    folder = tmp_path / "fn"
    (folder / "lib").mkdir(parents=True)
    (folder / "main.py").write_text("def handle(c, p): return p\n")
    (folder / "lib" / "words.txt").write_text("winterfell\n")

    names = source.extract(source.pack(folder), tmp_path / "out")

    assert sorted(names) == ["lib/words.txt", "main.py"]
    assert (tmp_path / "out" / "lib" / "words.txt").read_text() == "winterfell\n"


def test_pack_leaves_out_what_the_folders_funcignore_names_and_bytecode(tmp_path):
    folder = tmp_path / "fn"
    for name in ("main.py", "notes.md", "keep.md", "tests/test_main.py", "data/big.csv", "__pycache__/main.pyc",
                 "lib/__pycache__/x.pyc", "lib/words.py"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("x\n")
    (folder / ".funcignore").write_text("# what the function does not need\n*.md\n!keep.md\ntests/\n/data\n")

    names = source.validate(source.pack(folder))

    assert sorted(names) == ["keep.md", "lib/words.py", "main.py"]


def test_pack_of_a_single_file_stores_it_under_its_basename(tmp_path):
    (tmp_path / "hello.js").write_text("module.exports = () => 1\n")

    assert source.validate(source.pack(tmp_path / "hello.js")) == ["hello.js"]


def test_archive_without_end_blocks_and_dot_slash_slash_name_is_accepted(tmp_path):
    data = _archive((".//hello.py", b"print('hi')\n"), terminated=False)

    assert source.validate(data) == ["hello.py"]
    assert source.extract(data, tmp_path) == ["hello.py"]
    assert (tmp_path / "hello.py").read_text() == "print('hi')\n"


def test_links_that_stay_inside_the_folder_are_kept(tmp_path):
    data = _archive(("lib/a.py", b"A = 1\n"), _link("a.py", "lib/a.py"), _link("b.py", "lib/a.py", tarfile.LNKTYPE))

    source.extract(data, tmp_path)

    assert (tmp_path / "a.py").read_text() == "A = 1\n"
    assert (tmp_path / "b.py").read_text() == "A = 1\n"


@pytest.mark.parametrize(
    "entries, reason",
    [
        ((("../x", b"x"),), "entry '../x' escapes the source folder"),
        ((("lib/../../x", b"x"),), "entry 'lib/../../x' escapes the source folder"),
        ((("/etc/evil", b"x"),), "entry '/etc/evil' has an absolute path"),
        ((_link("up", "../../etc"),), "link 'up' -> '../../etc' points outside the source folder"),
        ((_link("abs", "/etc/passwd"),), "link 'abs' -> '/etc/passwd' points outside the source folder"),
        ((_link("here", "."), _link("parent", "here/..")), "link 'parent' -> 'here/..' points outside"),
        ((_link("hard", "../x", tarfile.LNKTYPE),), "link 'hard' -> '../x' points outside the source folder"),
        ((_link("tty", "", tarfile.CHRTYPE),), "entry 'tty' is a device or pipe"),
        ((_link("fifo", "", tarfile.FIFOTYPE),), "entry 'fifo' is a device or pipe"),
    ],
)
def test_entries_escaping_the_folder_are_refused_and_nothing_lands_outside(tmp_path, entries, reason):
    data = _archive(*entries)
    target = tmp_path / "deep" / "src"

    with pytest.raises(Rejected, match="invalid source archive: " + reason.replace("(", r"\(")) as refused:
        source.validate(data)
    with pytest.raises(Rejected):
        source.extract(data, target)

    assert refused.value.status == 400
    assert not (tmp_path / "deep" / "x").exists() and not (tmp_path / "x").exists()


def _folder(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


@pytest.mark.parametrize(
    "entries, reason",
    [
        ((_folder("lib"), ("lib", b"x")), "entry 'lib' cannot be unpacked over an earlier entry: Is a directory"),
        ((("lib", b"x"), ("lib/a.py", b"x")),
         "entry 'lib/a.py' cannot be unpacked over an earlier entry: Not a directory"),
        ((_link("hello.py", "nowhere.py", tarfile.LNKTYPE),), "link 'hello.py' -> 'nowhere.py' names no earlier entry"),
    ],
)
def test_entries_that_clash_with_earlier_ones_are_refused_when_unpacked(tmp_path, entries, reason):
    with pytest.raises(Rejected, match="invalid source archive: " + reason) as refused:
        source.extract(_archive(*entries), tmp_path / "src")

    assert refused.value.status == 400


def test_a_file_written_through_a_link_that_leaves_the_folder_is_refused(tmp_path):
    data = _archive(_link("here", "."), ("here/../escaped.txt", b"x"))

    with pytest.raises(Rejected, match="escapes the source folder"):
        source.extract(data, tmp_path / "src")

    assert not (tmp_path / "escaped.txt").exists()


@pytest.mark.parametrize(
    "data",
    [b"", b"hello.py", os.urandom(512), gzip.compress(b"not a tar at all" * 40), b"\x1f\x8b\x08" + os.urandom(300)],
    ids=["empty", "plain-text", "random", "gzip-of-garbage", "corrupt-gzip"],
)
def test_data_that_is_not_a_gzip_tar_is_refused_with_a_clear_message(tmp_path, data):
    with pytest.raises(Rejected, match="invalid source archive"):
        source.extract(data, tmp_path)


def test_truncated_archive_is_refused(tmp_path):
    data = _archive(("big.bin", os.urandom(200_000)))[:20_000]

    with pytest.raises(Rejected, match="invalid source archive"):
        source.validate(data)


def test_archive_without_files_is_refused():
    empty_dir = tarfile.TarInfo("./")
    empty_dir.type = tarfile.DIRTYPE

    with pytest.raises(Rejected, match="holds no files"):
        source.validate(_archive(empty_dir))
