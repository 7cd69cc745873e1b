"""The first programs of docs/getting-started.md compile (and run, once the
layers they use are in the library): documentation that cannot rot silently.
And the header's own documentation conventions (0.2.0): every function says
what may run concurrently ("Threads:"), no output is "unspecified" on error,
every deprecated function names a declared replacement in its own section."""
import ctypes
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import gen_api_md  # noqa: E402  (the header parser docs/api.md is made with)

LIBRARY = os.environ.get("SIMCLR_LIBRARY", os.path.join(ROOT, "lib", "libsimclr.so.0"))
DOC = open(os.path.join(ROOT, "docs", "getting-started.md")).read()
CC = os.environ.get("CC", "cc")


def code_blocks(lang):
    return re.findall(r"```%s\n(.*?)```" % lang, DOC, flags=re.S)


@pytest.mark.skipif(shutil.which(CC) is None, reason="no C compiler")
def test_first_c_program_compiles_and_runs(tmp_path):
    src = next(b for b in code_blocks("c") if "int main" in b)
    (tmp_path / "embed.c").write_text(src)
    exe = tmp_path / "embed"
    flags = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-I" + os.path.join(ROOT, "include")]
    r = subprocess.run([CC] + flags + ["-c", str(tmp_path / "embed.c"), "-o", str(tmp_path / "embed.o")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lib = ctypes.CDLL(LIBRARY)
    needed = set(re.findall(r"\b(simclr_[a-z_]+)\(", src))
    missing = sorted(n for n in needed if not hasattr(lib, n))
    if missing:
        pytest.skip("not in the library yet: " + ", ".join(missing))
    r = subprocess.run([CC, str(tmp_path / "embed.o"), "-o", str(exe), LIBRARY,
                        "-Wl,-rpath," + os.path.dirname(os.path.abspath(LIBRARY))],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "embedding of image 0 starts" in r.stdout


def _header_functions():
    """[(section, name, comment)] for every SIMCLR_API function of simclr.h,
    the comment being the one gen_api_md attaches (shared by a group of
    adjacent declarations)."""
    src = open(os.path.join(ROOT, "include", "simclr.h")).read()
    out, section, last, last_was_decl, prev = [], None, None, False, None
    for kind, text, gap in gen_api_md.tokens(src):
        adjacent = gap.strip() == "" or gap.strip().startswith("#")
        trailing = kind == "comment" and prev in ("typedef", "define") and "\n" not in gap
        prev = kind
        if trailing:  # "typedef ... simclr_stat; /* the 0.1 name */" belongs to the typedef
            continue
        if kind == "banner":
            section, last, last_was_decl = text, None, False
        elif kind == "comment":
            last = last + "\n" + text if (last and not last_was_decl and adjacent) else text
            last_was_decl = False
        elif kind == "decl":
            name = gen_api_md.parse_decl(text)[1]
            out.append((section, name, " ".join((last if (adjacent or last_was_decl) else "") .split())))
            last_was_decl = True
        else:
            last, last_was_decl = None, False
    return out


def test_every_function_has_a_threads_clause():
    fns = _header_functions()
    assert len(fns) > 100
    missing = [n for _, n, c in fns if "Threads:" not in c]
    assert missing == [], "no Threads: clause in the comment of " + ", ".join(missing)


def test_no_output_is_unspecified_on_error():
    src = open(os.path.join(ROOT, "include", "simclr.h")).read()
    assert "unspecified" not in src


def test_deprecated_functions_name_a_replacement_next_to_them():
    fns = _header_functions()
    where = {n: sec for sec, n, _ in fns}
    deprecated = [(sec, n, c) for sec, n, c in fns if c.startswith("Deprecated since")]
    assert {n for _, n, _ in deprecated} >= {"simclr_resnet_create", "simclr_mlp_head_create",
                                              "simclr_augment_create", "simclr_knn_eval", "simclr_linear_probe"}
    for sec, name, comment in deprecated:
        m = re.match(r"Deprecated since (\d+)\.(\d+)\.(\d+): use (simclr_\w+)", comment)
        assert m, name
        assert m.group(4) in where, "%s: the replacement %s is not declared" % (name, m.group(4))
        assert where[m.group(4)] == sec, "%s and its replacement %s sit in different sections" % (name, m.group(4))


def test_header_is_organized_by_subject():
    sections = [s for s, _, _ in _header_functions()]
    assert not [s for s in set(sections) if "Additions" in s or "(0.2)" in s]
    # each section is one contiguous run of declarations (no subject split in two)
    runs = [s for i, s in enumerate(sections) if i == 0 or sections[i - 1] != s]
    assert len(runs) == len(set(runs))
    toc = open(os.path.join(ROOT, "include", "simclr.h")).read().split("*/", 1)[0]
    assert "Contents:" in toc
