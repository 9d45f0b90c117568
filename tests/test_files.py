import os

import pytest

from stylejax.files import write_atomically


def test_write_atomically_replaces_the_content(tmp_path):
    path = tmp_path / "out.txt"
    path.write_bytes(b"old")
    write_atomically(str(path), lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_bytes(b"old content")

    def fail(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(str(path), fail)
    assert path.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["out.txt"]
