"""Nothing lost, nothing silent, through the real commands (issue 12).

* one output rule for every writing command: an output that is one of the command's inputs, or
  lies inside an input index or run, or replaces a folder kemp did not make, is refused with one
  line before any work (``kemp_kg.schema.check_output``);
* the output lock is taken at the start of a job, so a second writer fails before its work;
* Ctrl-C exits 130 with one line saying what was kept and the exact command that finishes the job,
  leaving no temporary file;
* every option is validated before any work (usage error, exit 2, no traceback, nothing written);
* temporary files of a killed run are removed by the next run of the same output.

The helpers (a command run as its own process, a patch that prints MARKER and holds at an exact
point) are those of test_pipeline_faults.py.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from test_pipeline_faults import (
    ENV,
    MARKER,
    TRAIN_ARGS,
    command,
    one_line_error,
    run,
    start_held,
)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def usage_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A click usage error: exit 2, no traceback, each needle in the message."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    text = " ".join(result.stderr.split())
    for needle in needles:
        assert needle in text, text[-2000:]


# ------------------------------------------------------------------------------------------------
# 1. an output never clobbers an input


def _clobber_cases(g: dict[str, Path], tmp: Path) -> dict[str, tuple[str, list[str], Path, str]]:
    """name -> (package, argv, the input that must stay byte-identical, expected message part)."""
    dialogues = tmp / "d.jsonl"
    graphs = tmp / "g.arrow"
    preds = tmp / "p.txt"
    run_dir = tmp / "run"
    index = tmp / "index"
    return {
        "enrich-out-is-the-dialogues": (
            "kemp_kg",
            ["enrich", str(dialogues), "--index", str(index), "--out", str(dialogues)],
            dialogues,
            "is also an input",
        ),
        "enrich-out-inside-the-index": (
            "kemp_kg",
            ["enrich", str(dialogues), "--index", str(index), "--out", str(index / "index.duckdb")],
            index / "index.duckdb",
            "inside the input folder",
        ),
        "generate-out-is-the-graphs": (
            "kemp_model",
            [
                "generate",
                str(run_dir),
                "--graphs",
                str(graphs),
                "--out",
                str(graphs),
                "--limit",
                "1",
            ],
            graphs,
            "is also an input",
        ),
        "generate-out-is-a-run-file": (
            "kemp_model",
            ["generate", str(run_dir), "--out", str(run_dir / "best.safetensors"), "--limit", "1"],
            run_dir / "best.safetensors",
            "is also an input",
        ),
        "score-json-is-the-predictions": (
            "kemp_model",
            ["score", str(preds), "--json", str(preds)],
            preds,
            "is also an input",
        ),
        "inspect-plot-is-the-graphs": (
            "kemp_kg",
            ["inspect", str(graphs), "--plot", str(graphs)],
            graphs,
            "is also an input",
        ),
    }


CLOBBER_CASES = sorted(_clobber_cases({}, Path("/")))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, golden, golden_run) -> Path:
    """Copies of the golden inputs under the names the clobber cases use."""
    tmp = tmp_path_factory.mktemp("clobber")
    shutil.copy(golden["inputs"] / "dialogues.jsonl", tmp / "d.jsonl")
    shutil.copy(golden["graphs"], tmp / "g.arrow")
    shutil.copytree(golden["index"], tmp / "index")
    shutil.copytree(golden_run, tmp / "run")
    (tmp / "p.txt").write_text(
        "Emotion:sad\nContext:['i lost my dog']\nConcept:[]\nPred:i am sorry\nRef:so sorry\n\n"
    )
    return tmp


@pytest.mark.parametrize("case", CLOBBER_CASES)
def test_an_output_that_is_an_input_is_refused_before_any_work(
    workspace: Path, golden, case: str
) -> None:
    package, argv, guarded, part = _clobber_cases(golden, workspace)[case]
    before = guarded.read_bytes()
    line = one_line_error(run(package, argv, cwd=workspace))
    assert part in line and str(guarded) in line, line
    assert guarded.read_bytes() == before


def test_train_refuses_a_foreign_folder_without_force(tmp_path: Path, golden) -> None:
    """A folder holding a user's vocab.json and metrics.jsonl but no run config.json."""
    user = tmp_path / "mine"
    user.mkdir()
    (user / "vocab.json").write_text('["my", "own"]\n')
    (user / "metrics.jsonl").write_text('{"my": "log"}\n')
    line = one_line_error(
        run("kemp_model", TRAIN_ARGS(golden["graphs"], user, steps=1), cwd=tmp_path)
    )
    assert "not a kemp run folder" in line and "--force" in line, line
    assert (user / "vocab.json").read_text() == '["my", "own"]\n'
    assert listing(user) == ["metrics.jsonl", "vocab.json"]


def test_build_index_refuses_to_replace_an_index_of_another_source(tmp_path: Path, golden) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(golden["index"], index_dir)
    before = {p.name: p.read_bytes() for p in index_dir.iterdir()}
    argv = ["build-index", str(golden["knowledge_v2"]), "--index", str(index_dir)]
    line = one_line_error(run("kemp_kg", argv, cwd=tmp_path))
    assert "another source" in line and "--force" in line, line
    assert {p.name: p.read_bytes() for p in index_dir.iterdir()} == before
    forced = run("kemp_kg", [*argv, "--force"], cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr[-3000:]


def test_build_index_through_a_symlink_rebuilds_its_target_and_leaves_nothing(
    tmp_path: Path, golden
) -> None:
    target = tmp_path / "idx"
    shutil.copytree(golden["index"], target)
    link = tmp_path / "idxlink"
    link.symlink_to(target, target_is_directory=True)
    argv = ["build-index", str(golden["knowledge_v2"]), "--index", str(link), "--force"]
    result = run("kemp_kg", argv, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert json.loads((target / "manifest.json").read_text())["source"]["path"].endswith("_v2.tsv")
    assert listing(tmp_path) == ["idx", "idxlink"]


# ------------------------------------------------------------------------------------------------
# 8. the output lock is taken before the work


def test_second_enrich_into_one_output_fails_before_doing_the_work(tmp_path: Path, golden) -> None:
    out = tmp_path / "g.arrow"
    argv = [
        "enrich",
        str(golden["inputs"] / "dialogues.jsonl"),
        "--index",
        str(golden["index"]),
        "--out",
        str(out),
    ]
    hold = f"""
        import kemp_kg.enrich as m
        _orig = m.read_dialogues
        def _slow(*a, **k):
            print("{MARKER}", flush=True); time.sleep(60)
            return _orig(*a, **k)
        m.read_dialogues = _slow
    """  # the first run is still READING its input: it has not written anything yet
    first = start_held("kemp_kg", argv, hold, cwd=tmp_path)
    try:
        second = run("kemp_kg", argv, cwd=tmp_path)
        assert "another kemp process is writing" in one_line_error(second)
        assert not out.exists()
    finally:
        first.kill()
        first.communicate(timeout=60)


# ------------------------------------------------------------------------------------------------
# 2. Ctrl-C: exit 130, one line (what was kept, the command that finishes), no temp file


def _interrupt(
    package: str, argv: list[str], hold: str, cwd: Path, stdin: bool = False
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        command(package, argv, hold),
        cwd=cwd,
        env=ENV,
        text=True,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if MARKER in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _interrupt_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 130, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


HOLD_WRITE = f"""
    import pyarrow.ipc as ipc
    _orig = ipc.new_file
    def _held(*a, **k):
        writer = _orig(*a, **k)  # the temporary file exists now
        print("{MARKER}", flush=True); time.sleep(60)
        return writer
    ipc.new_file = _held
"""


def test_ctrl_c_in_enrich_exits_130_keeps_the_old_graphs_and_says_how_to_finish(
    tmp_path: Path, golden
) -> None:
    out = tmp_path / "g.arrow"
    shutil.copy(golden["graphs"], out)
    before = out.read_bytes()
    argv = [
        "enrich",
        str(golden["inputs"] / "dialogues.jsonl"),
        "--index",
        str(golden["index"]),
        "--out",
        str(out),
    ]
    line = _interrupt_line(_interrupt("kemp_kg", argv, HOLD_WRITE, tmp_path))
    assert f"{out} is as it was" in line and "kemp-kg enrich" in line and str(out) in line, line
    assert out.read_bytes() == before
    assert listing(tmp_path) == ["g.arrow"]  # no temporary file, no lock file


def test_ctrl_c_in_build_index_exits_130_and_keeps_the_old_index(tmp_path: Path, golden) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(golden["index"], index_dir)
    before = {p.name: p.read_bytes() for p in index_dir.iterdir()}
    argv = ["build-index", str(golden["knowledge_v2"]), "--index", str(index_dir), "--force"]
    hold = f"""
        import kemp_kg.index as m
        _orig = m._write_index
        def _slow(*a, **k):
            print("{MARKER}", flush=True); time.sleep(60)
            return _orig(*a, **k)
        m._write_index = _slow
    """
    line = _interrupt_line(_interrupt("kemp_kg", argv, hold, tmp_path))
    assert "kemp-kg build-index" in line and "--force" in line, line
    assert {p.name: p.read_bytes() for p in index_dir.iterdir()} == before
    assert listing(tmp_path) == ["index"]


def test_ctrl_c_in_train_exits_130_and_names_the_resume_command(tmp_path: Path, golden) -> None:
    run_dir = tmp_path / "run"
    argv = TRAIN_ARGS(golden["graphs"], run_dir, steps=4)
    hold = f"""
        import torch
        _orig = torch.optim.Adam.step
        _calls = [0]
        def _step(self, *a, **k):
            _calls[0] += 1
            if _calls[0] == 3:  # the checkpoint of step 2 is written
                print("{MARKER}", flush=True); time.sleep(60)
            return _orig(self, *a, **k)
        torch.optim.Adam.step = _step
    """
    line = _interrupt_line(_interrupt("kemp_model", argv, hold, tmp_path))
    assert f"{run_dir} keeps its checkpoint of step 2" in line, line
    assert line.endswith(" --resume") and "kemp-model train" in line, line
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    resumed = run(
        "kemp_model", TRAIN_ARGS(golden["graphs"], run_dir, steps=4, resume=True), cwd=tmp_path
    )
    assert resumed.returncode == 0 and "resumed at 2" in resumed.stdout, resumed.stderr[-3000:]


def test_ctrl_c_in_evaluate_exits_130(tmp_path: Path, golden, golden_run) -> None:
    argv = [
        "evaluate",
        str(golden_run),
        "--graphs",
        str(golden["graphs"]),
        "--out-dir",
        str(tmp_path / "eval"),
        "--limit",
        "2",
    ]
    hold = f"""
        import kemp_model.evaluate as m
        _orig = m.predict
        def _slow(*a, **k):
            print("{MARKER}", flush=True); time.sleep(60)
            return _orig(*a, **k)
        m.predict = _slow
    """
    line = _interrupt_line(_interrupt("kemp_model", argv, hold, tmp_path))
    assert "kemp-model evaluate" in line, line
    assert not any(tmp_path.rglob("*.json"))


def test_ctrl_c_in_chat_exits_130(tmp_path: Path, golden, golden_run) -> None:
    argv = ["chat", str(golden_run), "--index", str(golden["index"]), "--device", "cpu"]
    hold = f"""
        import kemp_model.chat as m
        _orig = m.ChatSession.open
        def _open(*a, **k):
            session = _orig(*a, **k)
            print("{MARKER}", flush=True)
            return session
        m.ChatSession.open = _open
    """  # then chat waits for a line on its (open, silent) stdin
    line = _interrupt_line(_interrupt("kemp_model", argv, hold, tmp_path, stdin=True))
    assert "nothing was written" in line, line


# ------------------------------------------------------------------------------------------------
# 5, 6. every option is checked before any work


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (
            ["enrich", "{dialogues}", "--index", "{index}", "--out", "{out}", "--split", "bogus"],
            ["--split", "train, valid, test"],
        ),
        (
            [
                "enrich",
                "{dialogues}",
                "--index",
                "{index}",
                "--out",
                "{out}",
                "--min-confidence",
                "nan",
            ],
            ["min_confidence", "finite"],
        ),
        (["query", "happy", "--index", "{index}", "--top", "99999999999999999999"], ["--top"]),
        (
            ["build-index", "{knowledge}", "--index", "{out}", "--memory-limit", "lots"],
            ["memory_limit 'lots'"],
        ),
        (["build-index", "{knowledge}", "--index", "{out}", "--threads", "-1"], ["--threads"]),
        (["build-index", "{knowledge}", "--index", "{out}", "--threads", "100000"], ["--threads"]),
    ],
    ids=[
        "split-bogus",
        "min-confidence-nan",
        "top-huge",
        "memory-limit-lots",
        "threads-negative",
        "threads-100000",
    ],
)
def test_bad_kemp_kg_options_are_usage_errors_before_any_work(
    tmp_path: Path, golden, argv, needles
) -> None:
    values = {
        "dialogues": golden["inputs"] / "dialogues.jsonl",
        "index": golden["index"],
        "out": tmp_path / "out",
        "knowledge": golden["inputs"] / "knowledge.tsv",
    }
    usage_error(run("kemp_kg", [a.format(**values) for a in argv], cwd=tmp_path), *needles)
    assert listing(tmp_path) == []  # no output, no temp folder, no lock


def test_nan_length_penalty_is_a_usage_error(tmp_path: Path, golden, golden_run) -> None:
    argv = [
        "generate",
        str(golden_run),
        "--graphs",
        str(golden["graphs"]),
        "--limit",
        "1",
        "--decode",
        "beam",
        "--length-penalty",
        "nan",
    ]
    usage_error(run("kemp_model", argv, cwd=tmp_path), "length_penalty", "finite")


# ------------------------------------------------------------------------------------------------
# 4. a run folder is resumable (or restartable) from its first second


HOLD_FIRST_STEP = f"""
    import torch
    _orig = torch.optim.Adam.step
    def _step(self, *a, **k):  # the first optimiser step: config.json written, no checkpoint
        print("{MARKER}", flush=True); time.sleep(60)
        return _orig(self, *a, **k)
    torch.optim.Adam.step = _step
"""


def _same_weights(a: Path, b: Path) -> bool:
    from safetensors.torch import load_file

    left, right = load_file(str(a)), load_file(str(b))
    return left.keys() == right.keys() and all(left[k].equal(right[k]) for k in left)


@pytest.mark.parametrize("how", ["resume", "plain-rerun"])
def test_a_run_killed_before_its_first_checkpoint_can_be_resumed_or_rerun(
    tmp_path: Path, golden, golden_run, how: str
) -> None:
    from test_pipeline_faults import kill_at_marker

    run_dir = tmp_path / "run"
    kill_at_marker(
        "kemp_model", TRAIN_ARGS(golden["graphs"], run_dir, steps=2), HOLD_FIRST_STEP, cwd=tmp_path
    )
    assert (run_dir / "config.json").is_file() and not (run_dir / "last.state.safetensors").exists()
    argv = TRAIN_ARGS(golden["graphs"], run_dir, steps=2, resume=how == "resume")
    again = run("kemp_model", argv, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    if how == "resume":
        assert "no checkpoint yet" in again.stdout
    # the same weights as the uninterrupted golden run of the same command
    assert _same_weights(run_dir / "last.safetensors", golden_run / "last.safetensors")

    def log(folder: Path) -> list[tuple[str, int]]:  # no line left from the killed start
        lines = (folder / "metrics.jsonl").read_text().splitlines()
        return [(r["kind"], r["step"]) for r in map(json.loads, lines)]

    assert log(run_dir) == log(golden_run)


def test_ctrl_c_before_the_first_checkpoint_says_so(tmp_path: Path, golden) -> None:
    """(The --resume it names is run by the kill -9 test above.)"""
    run_dir = tmp_path / "run"
    argv = TRAIN_ARGS(golden["graphs"], run_dir, steps=2)
    line = _interrupt_line(_interrupt("kemp_model", argv, HOLD_FIRST_STEP, tmp_path))
    assert "holds no checkpoint yet" in line and line.endswith(" --resume"), line
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "vocab.json"]


def test_disk_full_at_the_first_checkpoint_then_resume(tmp_path: Path, golden) -> None:
    run_dir = tmp_path / "run"
    patch = """
        import errno, os
        import kemp_model.checkpoint as ck
        def _full(tensors, filename, metadata=None):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
        ck.save_file = _full
    """
    line = one_line_error(
        run("kemp_model", TRAIN_ARGS(golden["graphs"], run_dir, steps=2), cwd=tmp_path, patch=patch)
    )
    assert "No space left on device" in line and "--resume" in line, line
    resumed = run(
        "kemp_model", TRAIN_ARGS(golden["graphs"], run_dir, steps=2, resume=True), cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (run_dir / "last.state.safetensors").is_file()


def test_a_bad_seed_is_refused_before_the_run_folder_exists(tmp_path: Path, golden) -> None:
    run_dir = tmp_path / "run"
    argv = [*TRAIN_ARGS(golden["graphs"], run_dir, steps=2), "--seed", "-1"]
    usage_error(run("kemp_model", argv, cwd=tmp_path), "--seed")
    assert listing(tmp_path) == []  # a negative seed used to fail after config.json was written
