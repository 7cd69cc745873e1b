#!/usr/bin/env python3
"""Generates docs/api.md from the comments of include/simclr.h.

    python3 tools/gen_api_md.py            # rewrites docs/api.md
    python3 tools/gen_api_md.py --check    # exit 1 when docs/api.md is stale

The header is the manual; this script only rearranges it: for every public
function, grouped by the header's sections (one per handle), it prints the
prototype, the header comment, a parameter table whose direction and
ownership follow from the C types (T ** = output the caller receives,
const T * = borrowed input, ...), the return, the statuses the comment names,
and the thread-safety rule that applies. Nothing is written by hand, so a
change in the header shows up here on the next run (tests check it).
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(ROOT, "include", "simclr.h")
OUT = os.path.join(ROOT, "docs", "api.md")

HANDLES = ("simclr_context", "simclr_tensor", "simclr_module", "simclr_augment", "simclr_loss",
           "simclr_optimizer", "simclr_trainer", "simclr_dataset", "simclr_image_list", "simclr_embedder",
           "simclr_classifier")
# Plain structs the caller fills in and passes by pointer.
STRUCTS = ("simclr_allocator", "simclr_comm")
# Functions that touch no context: callable from any thread at any time.
GLOBAL_SAFE = {"simclr_version_number", "simclr_version_string", "simclr_status_string",
               "simclr_last_error", "simclr_backend_count", "simclr_backend_name",
               "simclr_augment_bounds", "simclr_lr_linear_scaling", "simclr_lr_sqrt_scaling",
               "simclr_context_create", "simclr_isa_supported", "simclr_error_set", "simclr_comm_single",
               "simclr_classification_metrics"}


def clean_comment(text):
    lines = []
    for line in text.strip()[2:-2].splitlines():
        line = re.sub(r"^\s*\* ?", "", line.rstrip())
        lines.append(line.strip())
    return "\n".join(lines).strip()


def tokens(src):
    """Yields ('banner', title), ('comment', text), ('decl', text), ('typedef', text) in order."""
    pos = 0
    pat = re.compile(
        r"(?P<banner>/\* =+ \*/\s*/\*\s*(?P<title>[^*]*?)\s*\*/\s*/\* =+ \*/)"
        r"|(?P<comment>/\*.*?\*/)"
        r"|(?P<decl>^SIMCLR_API\s[^;]*;)"
        r"|(?P<typedef>typedef\s+(?:enum|struct)\s+\w+\s*\{.*?\}\s*\w+\s*;|typedef\s[^;{]*;)"
        r"|(?P<define>^#define\s+SIMCLR_\w+(?:[^\n]*\\\n)*[^\n]*)", re.S | re.M)
    for m in pat.finditer(src):
        gap = src[pos:m.start()]
        pos = m.end()
        if m.group("banner"):
            yield "banner", m.group("title"), gap
        elif m.group("comment"):
            yield "comment", clean_comment(m.group("comment")), gap
        elif m.group("decl"):
            yield "decl", " ".join(m.group("decl").split()), gap
        elif m.group("typedef"):
            yield "typedef", m.group("typedef"), gap
        else:
            yield "define", m.group("define").strip(), gap


def c_type(t):
    """'const char * *' -> 'const char **', 'simclr_module*const*' -> 'simclr_module *const *'."""
    t = re.sub(r"\s*\*\s*", "*", " ".join(t.split()))
    return re.sub(r"(\w)\*", r"\1 *", t).strip()


def parse_decl(decl):
    m = re.match(r"SIMCLR_API\s+(.*?)\b(simclr_\w+)\s*\((.*)\)\s*;", decl)
    ret, name, raw = c_type(m.group(1)), m.group(2), m.group(3).strip()
    params = []
    if raw and raw != "void":
        for p in raw.split(","):
            pm = re.match(r"(.*?)(\w+)$", p.strip())
            params.append((c_type(pm.group(1)), pm.group(2)))
    return ret, name, params


def describe_param(ctype, pname, fname):
    t = " ".join(ctype.replace("*", " * ").split())
    stars = t.count("*")
    base = re.sub(r"\bconst\b|\*", " ", t).split()[0]
    if base in HANDLES:
        if stars == 2 and "* const *" not in t:
            return "out", "receives a new handle the caller owns and destroys" if fname.endswith(
                ("_create", "_open_idx", "_open_cifar", "_wrap")) else "receives a handle owned by the callee (borrowed)"
        if "* const *" in t:
            return "in", "array of borrowed handles"
        if fname.endswith("_destroy"):
            return "in", "destroyed (NULL is a no-op)"
        return "in", "borrowed" + (", read only" if t.startswith("const") else "")
    if base in STRUCTS and stars == 1:
        if t.startswith("const"):
            return "in", "caller's struct, read (copied where the description says) during the call"
        return "out", "caller's struct, filled in on success (untouched on error)"
    if stars == 0:
        return "in", "value"
    if base == "char":
        if stars == 1:
            return "in", "UTF-8 string, borrowed for the call"
        if "* const *" in t:
            return "in", "array of UTF-8 strings"
        return "out", "receives a string owned by the library"
    if t.startswith("const"):
        return "in", "caller's array, read during the call"
    if base == "void":
        return "in/out", "caller's buffer"
    return "out", "written on success (untouched on error)"


def thread_note(name, params, comment=None):
    # The header's own sentence wins ("Threads: ..."); the fallbacks below
    # are the conventions at the top of the header.
    m = re.search(r"Threads: (.+?)\.(?:\s|$)", " ".join((comment or "").split()))
    if m:
        return m.group(1)
    if name == "simclr_last_error":
        return "any thread; the message is per thread"
    if name in GLOBAL_SAFE:
        return "any thread, any time (no context involved)"
    return "one thread at a time per context (the objects of one context are not shared between threads)"


def render(src):
    out = ["# libsimclr API reference", "",
           "Generated by `tools/gen_api_md.py` from the comments of `include/simclr.h` "
           "(do not edit by hand; `make test-python` checks it is current).", "",
           "General rules (from the header): every fallible function returns a `simclr_status`; "
           "on error `simclr_last_error()` explains it, outputs are untouched and handles are "
           "as before the call. Out pointers must not be NULL unless stated. "
           "`simclr_x_create` gives the caller a handle to release with `simclr_x_destroy` "
           "(NULL is a no-op); objects made from a context are destroyed before it; borrowed "
           "handles must outlive their borrower. Every function that takes a handle returns "
           "`SIMCLR_E_INVALID` when that handle or an out pointer is NULL. Shapes are `int64_t`, "
           "every enum-keyed setting is a `double`, and every function states what may run "
           "concurrently (\"Threads:\"). Sections follow the header, one per subject; deprecated "
           "functions sit next to their replacements. ABI and soname policy: "
           "`docs/architecture.md`, \"Build and ABI\".", ""]
    sections = []
    cur = None
    last_comment = None
    last_was_decl = False
    intro = None
    prev_kind = None
    for kind, text, gap in tokens(src):
        adjacent = gap.strip() == "" or gap.strip().startswith("#")
        trailing = kind == "comment" and prev_kind in ("typedef", "define") and "\n" not in gap
        prev_kind = kind
        if trailing and cur is not None and cur["items"]:
            # a comment on the line of a typedef ("typedef ... simclr_stat; /* the 0.1 name */")
            # belongs to it, not to the function comment that follows
            k, t, c, sh = cur["items"][-1]
            cur["items"][-1] = (k, t + " /* " + text + " */", c, sh)
            continue
        if kind == "banner":
            cur = {"title": text, "items": [], "notes": []}
            sections.append(cur)
            last_comment, last_was_decl = None, False
            continue
        if cur is None:
            if kind == "comment" and intro is None:
                intro = text
            continue
        if kind == "comment":
            if last_comment and not last_was_decl and adjacent:
                last_comment = last_comment + "\n" + text
            else:
                last_comment = text
            last_was_decl = False
        elif kind == "decl":
            comment = last_comment if (adjacent or last_was_decl) else None
            cur["items"].append(("fn", parse_decl(text), comment, last_was_decl and comment is not None))
            last_was_decl = True
        elif kind in ("typedef", "define"):
            cur["items"].append((kind, text, last_comment if adjacent else None, False))
            last_comment, last_was_decl = None, False
    toc = ["## Contents", ""]
    body = []
    for s in sections:
        anchor = re.sub(r"[^a-z0-9 -]", "", s["title"].lower()).replace(" ", "-")
        fns = [it[1][1] for it in s["items"] if it[0] == "fn"]
        toc.append("- [%s](#%s): %s" % (s["title"], anchor, ", ".join("`%s`" % f for f in fns) or "types"))
        body += ["## %s" % s["title"], ""]
        types = [it for it in s["items"] if it[0] in ("typedef", "define")]
        if types:
            body += ["### Types and constants", "", "```c"]
            for _, text, comment, _ in types:
                body.append(text)
            body += ["```", ""]
        for kind, parsed, comment, shared in s["items"]:
            if kind != "fn":
                continue
            ret, name, params = parsed
            proto = "%s%s%s(%s);" % (ret, "" if ret.endswith("*") else " ", name, ", ".join("%s%s%s" % (t, "" if t.endswith("*") else " ", n)
                                                           for t, n in params) or "void")
            body += ["### `%s`" % name, "", "```c", proto, "```", ""]
            if comment:
                body += [("(Shared description.) " if shared else "") + comment.replace("\n", " ")
                         .replace("  ", " "), ""]
            dep = re.match(r"Deprecated since ([0-9.]+): use (simclr_\w+)", comment or "")
            if dep and not shared:
                body += ["> **Deprecated since %s:** use [`%s`](#%s). Still exported and working; "
                         "new code should not call it." % (dep.group(1), dep.group(2), dep.group(2)), ""]
            if params:
                body += ["| parameter | type | direction | ownership / notes |", "|---|---|---|---|"]
                for t, n in params:
                    d, note = describe_param(t, n, name)
                    body.append("| `%s` | `%s` | %s | %s |" % (n, t, d, note))
                body.append("")
            if ret == "simclr_status":
                errs = sorted(set(re.findall(r"SIMCLR_E_[A-Z]+", comment or "")))
                if params and any(describe_param(t, n, name)[0] != "in" or t.split()[0] in HANDLES or
                                  t.startswith("const simclr_") for t, n in params):
                    errs = sorted(set(errs) | {"SIMCLR_E_INVALID"})
                body.append("- **Returns:** `SIMCLR_OK`, or an error status%s." % (
                    " (named by the header: %s)" % ", ".join("`%s`" % e for e in errs) if errs else ""))
            elif ret == "void":
                body.append("- **Returns:** nothing; never fails.")
            else:
                body.append("- **Returns:** `%s` (see the description; never sets an error)." % ret)
            body.append("- **Thread safety:** %s." % thread_note(name, params, comment))
            body.append("")
    return "\n".join(out + toc + [""] + body).rstrip() + "\n"


def main():
    with open(HEADER) as f:
        text = render(f.read())
    if "--check" in sys.argv:
        try:
            with open(OUT) as f:
                current = f.read()
        except OSError:
            current = ""
        if current != text:
            sys.stderr.write("docs/api.md is out of date: run python3 tools/gen_api_md.py\n")
            return 1
        return 0
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
