import os
import stat

import pytest

from selectivity.files import atomic_path, remove_stale_temporaries, write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "result.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_written_files_get_the_usual_permissions(tmp_path):
    path = write_text(tmp_path / "x.txt", "data")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    dead = tmp_path / ".a.npy.999999999-abc.tmp"
    mine = tmp_path / f".b.npy.{os.getpid()}-def.tmp"
    other = tmp_path / ".c.tmp"
    for path in (dead, mine, other):
        path.write_text("")
    remove_stale_temporaries(tmp_path)
    assert not dead.exists() and mine.exists() and other.exists()
