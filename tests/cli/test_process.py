"""A ``c360`` process ends as ``sys.exit`` would end it (its status, its threads' and atexit
handlers' work, its output), without the interpreter's teardown (cli/process.py)."""

import subprocess
import sys
import textwrap

import pytest

from cli.process import exit_status

# A child process whose command leaves work for the end: a non-daemon thread still writing, an
# atexit handler, unflushed output, and a module-level object whose finaliser runs only when the
# interpreter tears its modules down.
CHILD = textwrap.dedent(
    """
    import atexit, sys, threading, time
    from pathlib import Path
    import click
    from cli.process import run_as_process

    out = Path(sys.argv[1])

    class Torn:
        def __del__(self):
            (out / "torn_down").write_text("teardown ran")

    KEPT = Torn()

    def late_writer():
        time.sleep(0.5)
        (out / "thread").write_text("the thread finished")

    @click.command()
    @click.argument("where")
    @click.argument("code", type=int)
    def command(where, code):
        atexit.register(lambda: (out / "atexit").write_text("the handler ran"))
        threading.Thread(target=late_writer).start()
        sys.stdout.write("no newline, not flushed")
        sys.exit(code)

    run_as_process(command)
    """
)


@pytest.mark.parametrize("code", [0, 3])
def test_the_process_keeps_its_status_threads_handlers_and_output_but_skips_the_teardown(tmp_path, code):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(code)], capture_output=True, text=True, check=False
    )
    assert done.returncode == code, done.stderr
    assert done.stdout == "no newline, not flushed"
    assert (tmp_path / "thread").read_text() == "the thread finished"
    assert (tmp_path / "atexit").read_text() == "the handler ran"
    # What leave() skips: Python would free the module's objects and run their finalisers.
    assert not (tmp_path / "torn_down").exists()


def test_exit_status_is_what_sys_exit_gives(capsys):
    assert exit_status(None) == 0
    assert exit_status(0) == 0
    assert exit_status(2) == 2
    assert exit_status(-1) == 255
    assert exit_status(True) == 1
    assert exit_status("the warehouse is locked") == 1
    assert capsys.readouterr().err == "the warehouse is locked\n"


def test_under_a_profiler_the_process_exits_as_python_does_and_the_profile_is_written(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    profile = tmp_path / "child.prof"
    done = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(profile), str(script), str(tmp_path), "3"],
        capture_output=True,
        text=True,
        check=False,
    )
    # (cProfile's main swallows the SystemExit: its status is always 0)
    assert done.returncode == 0, done.stderr
    assert profile.stat().st_size > 0
    assert (tmp_path / "thread").exists() and (tmp_path / "atexit").exists()
