import os
import stat
from pathlib import Path

import pytest

from selectivity.files import (
    FileError,
    FolderError,
    atomic_path,
    one_line,
    refuse_other_contents,
    remove_stale_temporaries,
    write_text,
)


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


def test_a_temporary_is_kept_only_while_its_writer_runs(tmp_path):
    import subprocess
    import time

    writer = subprocess.Popen(["sleep", "60"])
    try:
        temporary = tmp_path / f".a.pt.{writer.pid}-abc.tmp"
        temporary.write_text("")
        remove_stale_temporaries(tmp_path)
        assert temporary.exists()  # a live writer
        # A process that started after the file was last written is not its writer (pid reuse).
        an_hour_ago = time.time() - 3600
        os.utime(temporary, (an_hour_ago, an_hour_ago))
        remove_stale_temporaries(tmp_path)
        assert not temporary.exists()
        temporary.write_text("")
        writer.kill()
        deadline = time.time() + 10
        stat_file = Path(f"/proc/{writer.pid}/stat")
        while stat_file.read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.time() < deadline
            time.sleep(0.01)
        remove_stale_temporaries(tmp_path)  # killed, not yet reaped: a zombie is gone too
        assert not temporary.exists()
    finally:
        writer.kill()
        writer.wait()


def test_one_line_is_the_first_line_of_a_message_or_its_type():
    assert one_line(ValueError("\n  first\nsecond\n")) == "first"
    assert one_line(ValueError("first\nsecond"), with_type=True) == "ValueError: first"
    assert one_line(KeyError()) == "KeyError"
    assert one_line(RuntimeError("   "), with_type=True) == "RuntimeError"


def test_a_folder_of_other_contents_is_refused_naming_the_keys_that_differ():
    recorded = {"lr": 0.1, "depth": [2, 3], "device": "cpu", "old": 1}
    wanted = {"lr": 0.1, "depth": [2, 4], "device": "cuda", "new": "x"}
    with pytest.raises(FolderError) as caught:
        refuse_other_contents("F", "a run", recorded, wanted, "use another --out", ("device",))
    # Sorted keys, each with both values; a key on one side only is None on the other.
    assert str(caught.value) == (
        "F holds a run (depth: [2, 3] there, [2, 4] here, new: None there, 'x' here, "
        "old: 1 there, None here); use another --out"
    )
    assert isinstance(caught.value, FileError)  # one line from the CLI, like unreadable files


def test_a_folder_differing_only_in_ignored_keys_is_accepted():
    refuse_other_contents("F", "a run", {"lr": 0.1, "device": "cpu"}, {"lr": 0.1}, "", ("device",))
    refuse_other_contents("F", "a run", {}, {}, "")
