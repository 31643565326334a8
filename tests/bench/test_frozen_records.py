"""Records are frozen: every results file under benchmarks/results/ (superseded ones too) is
listed in benchmarks/frozen.sha256 with its hash, by file name (a superseded record moves to
results/superseded/ under the same name); the list only grows: no committed version of it
changes or drops an entry of the version before (git history), nor does the working copy
of HEAD's. A correction is a new file with `supersedes`, listed beside the old one."""

from __future__ import annotations

import hashlib
import subprocess

from conftest import ROOT

RESULTS = ROOT / "benchmarks" / "results"
LIST = ROOT / "benchmarks" / "frozen.sha256"
REL = "benchmarks/frozen.sha256"


def entries(text: str) -> dict[str, str]:
    """{file name: sha256} from the list's lines ("HASH  NAME")."""
    out = {}
    for line in text.splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            assert name not in out, f"{name} listed twice"
            out[name] = digest
    return out


def git(*args: str) -> str:
    proc = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr.strip()}"
    return proc.stdout


def test_every_record_is_listed_with_its_hash():
    listed = entries(LIST.read_text(encoding="utf-8"))
    files = {p.name: p for p in RESULTS.rglob("*.json")}
    assert len(files) == len(list(RESULTS.rglob("*.json"))), "a file name used twice"
    assert sorted(files) == sorted(listed)  # every file listed, every entry a file
    changed = [name for name, p in sorted(files.items())
               if hashlib.sha256(p.read_bytes()).hexdigest() != listed[name]]
    assert changed == [], "records are never edited: a correction is a new file"


def test_the_list_only_grows():
    # every commit that touched the list, against the list in each of its parents (a merge
    # holds both branches' entries), and the working copy against HEAD's
    for commit in git("log", "--format=%H", "--", REL).split():
        newer = entries(git("show", f"{commit}:{REL}"))
        for parent in git("log", "-1", "--format=%P", commit).split():
            if git("ls-tree", parent, "--", REL).strip():
                older = entries(git("show", f"{parent}:{REL}"))
                assert [n for n in older if newer.get(n) != older[n]] == [], commit
    head = entries(git("show", f"HEAD:{REL}"))
    current = entries(LIST.read_text(encoding="utf-8"))
    assert [n for n in head if current.get(n) != head[n]] == []
